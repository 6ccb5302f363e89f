"""Registration of the tools envs (filled in by the tools work)."""


def register_tools() -> None:
    pass
