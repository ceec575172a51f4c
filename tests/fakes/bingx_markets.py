"""Kept for existing imports: the fake BingX now lives in ``tests.fakes.bingx`` (see its docstring)."""

from tests.fakes.bingx import (  # noqa: F401
    BackgroundServer,
    FakeBingX,
    FakeBingXState,
    RecordedRequest,
    bingx_error,
    bingx_ok,
    create_app,
    fake_bingx,
    snapshot_contracts,
)
