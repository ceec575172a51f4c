"""A protocol-faithful fake BingX (USDT-M perpetual swaps) on 127.0.0.1 that unmodified ccxt talks to.

- ``state``: the simulated exchange (accounts, orders, fills, triggers, positions, margin), no I/O;
- ``wire``: BingX's JSON shapes for those objects;
- ``app``: the HTTP endpoints, auth and fault injection; ``ws``: the user-data WebSocket stream;
- ``faults``: ``Fault`` kinds; ``server``: ``BackgroundServer`` and ``fake_bingx()``.

Usage::

    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1", balance=Decimal("10000"))
        bingx.set_mark_price("BTC-USDT", Decimal("50000"))
        ...  # point ccxt's urls['api'][*] at bingx.base_url + "/openApi"
"""

from .app import RecordedRequest, bingx_error, bingx_ok, bingx_signature, create_app, signature_payload
from .faults import Fault, FiredFault
from .server import BackgroundServer, FakeBingX, fake_bingx, snapshot_contracts
from .state import BingXError, Contract, FakeAccount, FakeBingXState, FakeOrder, FakePosition, symbol_id

__all__ = [
    "BackgroundServer",
    "BingXError",
    "Contract",
    "FakeAccount",
    "FakeBingX",
    "FakeBingXState",
    "FakeOrder",
    "FakePosition",
    "Fault",
    "FiredFault",
    "RecordedRequest",
    "bingx_error",
    "bingx_ok",
    "bingx_signature",
    "create_app",
    "fake_bingx",
    "signature_payload",
    "snapshot_contracts",
    "symbol_id",
]
