"""Injected faults do what they say: seen through real ccxt with a short client timeout."""

from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import pytest

from tests.fakes.bingx import Fault, fake_bingx
from tests.fakes_tests.clients import sync_client

BTC = "BTC/USDT:USDT"
ORDER = "/openApi/swap/v2/trade/order"
CLIENT_TIMEOUT_MS = 300
HOLD_SECONDS = 1


def trading(bingx):
    account = bingx.add_account(api_key="k1", api_secret="s1", balance=Decimal("10000"))
    bingx.set_mark_price("BTC-USDT", Decimal("50000"))
    return account, sync_client(bingx, account, timeout_ms=CLIENT_TIMEOUT_MS)


def buy(client, client_order_id="c1"):
    return client.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": client_order_id})


def test_timeout_after_execute_times_out_but_the_order_exists():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.timeout_after_execute(hold_seconds=HOLD_SECONDS), times=1)
        with pytest.raises(ccxt.RequestTimeout):
            buy(client)
        assert account.order_by_client_id("c1").status == "FILLED"
        with pytest.raises(ccxt.DuplicateOrderId):  # the retry with the same id is recognised
            buy(client)


def test_timeout_before_execute_times_out_and_nothing_happened():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.timeout_before_execute(hold_seconds=HOLD_SECONDS), times=1)
        with pytest.raises(ccxt.RequestTimeout):
            buy(client)
        time.sleep(HOLD_SECONDS + 0.2)  # even after the hold, nothing is executed
        assert account.orders == []
        buy(client)  # the fault was used up: the retry goes through
    assert len(account.orders) == 1


def test_an_http_503_is_exchange_not_available_and_not_executed():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.http_error(status=503))
        with pytest.raises(ccxt.ExchangeNotAvailable):
            buy(client)
    assert account.orders == []


def test_a_dropped_connection_is_a_network_error_and_not_executed():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.drop_connection())
        with pytest.raises(ccxt.NetworkError):
            buy(client)
    assert account.orders == []


def test_a_429_is_rate_limit_exceeded_and_not_executed():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.rate_limit())
        with pytest.raises(ccxt.RateLimitExceeded):  # from the HTTP status; ccxt 4.5.90 has it under NetworkError
            buy(client)
    assert account.orders == []


def test_an_error_fault_answers_bingxs_envelope_and_is_not_executed():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.error(101204, "Insufficient margin"))
        with pytest.raises(ccxt.InsufficientFunds):
            buy(client)
    assert account.orders == []


def test_a_delay_answers_normally_after_the_delay():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        client.timeout = 2000
        bingx.fault("POST", ORDER, Fault.delay(0.3))
        started = time.monotonic()
        buy(client)
    assert time.monotonic() - started >= 0.3
    assert len(account.orders) == 1


def test_a_fault_lasts_times_requests_and_is_recorded_each_time():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.http_error(status=502), times=2)
        for client_order_id in ("a", "b"):
            with pytest.raises(ccxt.ExchangeNotAvailable):
                buy(client, client_order_id)
        buy(client, "c")
        fired = bingx.fired_faults
    assert [(f.method, f.path, f.fault.status) for f in fired] == [("POST", ORDER, 502)] * 2
    assert [o.client_order_id for o in account.orders] == ["c"]


def test_a_fault_without_times_lasts_until_cleared_and_matches_method_and_path_only():
    with fake_bingx() as bingx:
        account, client = trading(bingx)
        bingx.fault("POST", ORDER, Fault.rate_limit(), times=None)
        for client_order_id in ("a", "b", "c"):
            with pytest.raises(ccxt.RateLimitExceeded):
                buy(client, client_order_id)
        assert client.fetch_balance()["USDT"]["free"] == 10000.0  # other paths unaffected
        bingx.clear_faults()
        buy(client, "d")
    assert len(account.orders) == 1


def test_the_server_shuts_down_promptly_with_a_request_still_held():
    with fake_bingx() as bingx:
        _, client = trading(bingx)
        bingx.fault("GET", "/openApi/swap/v3/user/balance", Fault.timeout_before_execute(hold_seconds=30))
        with pytest.raises(ccxt.RequestTimeout):
            client.fetch_balance()
        started = time.monotonic()
    assert time.monotonic() - started < 3
