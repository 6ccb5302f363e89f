"""Registration of the web envs (filled in by the web work)."""


def register_web() -> None:
    pass
