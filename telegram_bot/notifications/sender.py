"""Placeholder until its owner lands it: keeps build_application importable."""


def register(application) -> None:
    pass
