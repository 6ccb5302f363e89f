"""Registration of the adapters envs (filled in by the adapters work)."""


def register_adapters() -> None:
    pass
