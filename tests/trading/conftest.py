from tests.conftest_bingx import bingx, on_bingx  # noqa: F401 - fixtures
from tests.trading.fixtures import account, by_hand, listen  # noqa: F401 - fixtures
