"""The project's one door to BingX: the only package that imports ccxt.

- ``public``: the public market list (no keys).
- ``client``: one account's BingX, in our own types (``types``) and errors (``errors``).
- ``clock``: BingX's time, so signed requests are stamped right.
- ``breaker``: the per-account circuit breaker.

No ccxt type or exception leaves this package.
"""

from trading.exchange.errors import ExchangeUnavailable
from trading.exchange.public import (
    fetch_swap_contracts,
    load_swap_markets,
    parse_swap_contracts,
    rest_api_root,
    swap_contracts_url,
)

__all__ = [
    "ExchangeUnavailable",
    "fetch_swap_contracts",
    "load_swap_markets",
    "parse_swap_contracts",
    "rest_api_root",
    "swap_contracts_url",
]
