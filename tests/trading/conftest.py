from tests.conftest_bingx import bingx, on_bingx  # noqa: F401 - fixtures
