"""The BingX adapter on its own: endpoints per mode, error translation, breaker, clock, and the client against
the fake BingX (real ccxt over loopback)."""

from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import pytest
from django.core.cache import cache
from django.utils import timezone

from tests.conftest_bingx import KEY, SECRET
from tests.factories import OrderFactory, PositionFactory, TradingAccountFactory
from tests.fakes.bingx import Fault
from trading.exchange import breaker
from trading.exchange.client import client_for, endpoints_for
from trading.exchange.clock import clock_measure, clock_reading, clock_usable
from trading.exchange.errors import (
    AuthenticationFailed,
    CircuitOpen,
    ClockSkew,
    DuplicateClientOrderId,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientMargin,
    NotConfigured,
    OrderNotFound,
    RateLimited,
    translate,
)
from trading.exchange.types import ExchangeOrder, OrderRequest
from trading.execution import order_apply, position_open_or_update
from trading.models import Fill, Position

pytestmark = pytest.mark.django_db

BTC = "BTC/USDT:USDT"


# --- endpoints -----------------------------------------------------------------------------------


def test_a_live_account_talks_to_bingx_itself_by_default(settings):
    settings.BINGX_BASE_URL, settings.BINGX_WS_URL = "https://open-api.bingx.com", ""

    endpoints = endpoints_for("live")

    assert endpoints.rest_root == "https://open-api.bingx.com/openApi"
    assert endpoints.ws["linear"] == "wss://open-api-swap.bingx.com/swap-market"
    assert endpoints.sandbox is False


def test_a_demo_account_selects_bingx_virtual_usdt_hosts(settings):
    settings.BINGX_BASE_URL, settings.BINGX_WS_URL = "https://open-api.bingx.com", ""

    endpoints = endpoints_for("demo")

    assert endpoints.rest_root == "https://open-api-vst.bingx.com/openApi"
    assert endpoints.ws["linear"] == "wss://vst-open-api-ws.bingx.com/swap-market"
    assert endpoints.sandbox is True


@pytest.mark.parametrize("mode", ["live", "demo"])
def test_configured_endpoints_win_in_live_and_demo_alike(settings, mode):
    settings.BINGX_BASE_URL, settings.BINGX_WS_URL = "http://127.0.0.1:9999", "ws://127.0.0.1:9999/swap-market"

    endpoints = endpoints_for(mode)

    assert endpoints.rest_root == "http://127.0.0.1:9999/openApi"
    assert endpoints.ws["linear"] == "ws://127.0.0.1:9999/swap-market"
    # ccxt tells spot from swap by the URL: the spot one must not be a prefix of the linear one.
    assert not endpoints.ws["linear"].startswith(endpoints.ws["spot"] + "?")
    assert endpoints.ws["spot"] != endpoints.ws["linear"]
    assert endpoints.sandbox is False


def test_every_ccxt_section_of_a_client_points_at_the_configured_endpoint(settings, bingx, on_bingx):
    account = TradingAccountFactory(mode="demo", api_key=KEY, api_secret=SECRET)

    client = client_for(account)

    sections = {name: url for name, url in client._ccxt.urls["api"].items() if isinstance(url, str)}
    assert set(sections.values()) == {bingx.base_url + "/openApi"}


def test_a_dry_run_account_gets_no_exchange_client():
    with pytest.raises(NotConfigured):
        endpoints_for("dry_run")


def test_an_account_without_keys_gets_no_exchange_client(bingx):
    with pytest.raises(NotConfigured, match="no BingX API key pair"):
        client_for(TradingAccountFactory(mode="live"))


# --- errors ----------------------------------------------------------------------------------------


def _bingx_error(kind, code: int, msg: str):
    return kind(f'bingx {{"code":{code},"msg":"{msg}","timestamp":1700000000000}}')


@pytest.mark.parametrize(
    ("raised", "ours"),
    [
        (_bingx_error(ccxt.InsufficientFunds, 101204, "Insufficient margin"), InsufficientMargin),
        (_bingx_error(ccxt.DuplicateOrderId, 101481, "clientOrderID cannot be repeated"), DuplicateClientOrderId),
        (_bingx_error(ccxt.OrderNotFound, 80016, "order not exist"), OrderNotFound),
        (_bingx_error(ccxt.AuthenticationError, 100001, "Signature verification failed"), AuthenticationFailed),
        (_bingx_error(ccxt.PermissionDenied, 100419, "IP not whitelisted"), AuthenticationFailed),
        (_bingx_error(ccxt.BadSymbol, 100421, "Null timestamp or timestamp mismatch"), ClockSkew),
        (_bingx_error(ccxt.InvalidOrder, 101400, "below the minimum quantity"), ExchangeRejected),
        (ccxt.DDoSProtection("bingx 429 Too Many Requests"), RateLimited),
        (ccxt.RateLimitExceeded("bingx 429"), RateLimited),
        (ccxt.RequestTimeout("bingx POST timed out"), ExchangeUnavailable),
        (ccxt.ExchangeNotAvailable("bingx 503 Service Unavailable"), ExchangeUnavailable),
        (ccxt.NetworkError("connection reset"), ExchangeUnavailable),
    ],
)
def test_ccxt_errors_become_ours_by_what_the_caller_must_do(raised, ours):
    error = translate(raised, action="create order")

    assert type(error) is ours


def test_a_translated_refusal_keeps_bingx_code_and_message():
    error = translate(_bingx_error(ccxt.InsufficientFunds, 101204, "Insufficient margin"), action="create order")

    assert error.code == 101204
    assert str(error) == "create order: BingX 101204: Insufficient margin"


# --- circuit breaker --------------------------------------------------------------------------------


@pytest.fixture
def breaker_settings(settings):
    cache.clear()
    breaker.breaker_forget_local()
    settings.EXCHANGE_BREAKER_FAILURES = 2
    settings.EXCHANGE_BREAKER_OPEN_SECONDS = 30
    yield settings
    cache.clear()


def test_the_breaker_opens_at_the_threshold_and_tells_its_listener(breaker_settings):
    heard = []
    breaker.breaker_listen(lambda account_id, opened, reason: heard.append((account_id, opened)))

    breaker.breaker_record_failure(7, "timeout")
    breaker.breaker_check(7)  # one failure: still closed
    breaker.breaker_record_failure(7, "timeout")

    with pytest.raises(CircuitOpen, match="2 transport failures"):
        breaker.breaker_check(7)
    assert (7, True) in heard


def test_a_success_resets_the_count_of_failures(breaker_settings):
    breaker.breaker_record_failure(8, "timeout")
    breaker.breaker_record_success(8)
    breaker.breaker_record_failure(8, "timeout")

    breaker.breaker_check(8)  # not open: the failures were not consecutive


def test_the_breaker_lets_a_trial_through_after_its_open_time(breaker_settings):
    breaker_settings.EXCHANGE_BREAKER_OPEN_SECONDS = 1
    breaker.breaker_record_failure(9, "timeout")
    breaker.breaker_record_failure(9, "timeout")

    time.sleep(1.05)

    breaker.breaker_check(9)


def test_breakers_are_per_account(breaker_settings):
    breaker.breaker_record_failure(10, "timeout")
    breaker.breaker_record_failure(10, "timeout")

    breaker.breaker_check(11)


# --- clock ---------------------------------------------------------------------------------------------


def test_the_clock_offset_is_bingx_time_minus_ours_at_mid_round_trip():
    cache.clear()
    reading = clock_measure("root-a", lambda: int(time.time() * 1000) + 8_000)

    assert abs(reading.offset_ms - 8_000) < 50
    assert clock_reading("root-a") == reading


def test_trading_is_refused_when_the_offset_is_too_uncertain():
    cache.clear()

    def slow_server_time() -> int:
        time.sleep(0.01)
        return int(time.time() * 1000)

    clock_measure("root-b", slow_server_time)
    import trading.exchange.clock as clock

    original, clock.RECV_WINDOW_MS = clock.RECV_WINDOW_MS, 5  # a window narrower than the round trip
    try:
        with pytest.raises(ClockSkew, match="uncertain"):
            clock_usable("root-b", slow_server_time)
    finally:
        clock.RECV_WINDOW_MS = original


# --- the client against the fake -------------------------------------------------------------------


def test_a_wrong_secret_is_refused_as_an_authentication_failure(bingx, on_bingx):
    account = TradingAccountFactory(mode="live", api_key=KEY, api_secret="not-the-secret")

    with pytest.raises(AuthenticationFailed, match="100001"):
        client_for(account).balance()


def test_balance_and_positions_come_back_as_decimals(bingx, on_bingx):
    client = client_for(TradingAccountFactory(mode="live", api_key=KEY, api_secret=SECRET))
    client.create_order(_market_buy("t1"))

    balance = client.balance()
    [position] = client.positions(BTC)

    assert balance.available < balance.wallet_balance <= Decimal("10000")
    assert isinstance(balance.equity, Decimal)
    assert (position.side, position.qty, position.entry_price) == ("long", Decimal("0.01"), Decimal("65000"))


def test_a_lookup_by_client_id_finds_the_order_or_proves_it_absent(bingx, on_bingx):
    client = client_for(TradingAccountFactory(mode="live", api_key=KEY, api_secret=SECRET))
    client.create_order(
        OrderRequest(
            symbol=BTC,
            side="buy",
            order_type="market",
            qty=Decimal("0.01"),
            client_order_id="tvabc",
            position_side="long",
        )
    )

    found = client.order_by_client_id(BTC, "tvabc")

    assert (found.client_order_id, found.status, found.filled_qty) == ("tvabc", "filled", Decimal("0.01"))
    assert client.order_by_client_id(BTC, "tvnothere") is None


def test_reads_are_repeated_after_a_transport_failure(bingx, on_bingx):
    client = client_for(TradingAccountFactory(mode="live", api_key=KEY, api_secret=SECRET))
    bingx.fault("GET", "/openApi/swap/v3/user/balance", Fault.http_error(status=502))

    assert client.balance().wallet_balance == Decimal("10000")
    assert len(bingx.requests_for("/openApi/swap/v3/user/balance")) == 2


def test_an_order_is_never_repeated_by_the_client_itself(bingx, on_bingx):
    client = client_for(TradingAccountFactory(mode="live", api_key=KEY, api_secret=SECRET))
    bingx.fault("POST", "/openApi/swap/v2/trade/order", Fault.http_error(status=502))

    with pytest.raises(ExchangeUnavailable):
        client.create_order(
            OrderRequest(
                symbol=BTC,
                side="buy",
                order_type="market",
                qty=Decimal("0.01"),
                client_order_id="t2",
                position_side="long",
            )
        )
    assert len(bingx.requests_for("/openApi/swap/v2/trade/order", "POST")) == 1


def _market_buy(client_order_id: str) -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side="buy",
        order_type="market",
        qty=Decimal("0.01"),
        client_order_id=client_order_id,
        position_side="long",
    )


# --- applying what the exchange says -----------------------------------------------------------------


def _state(order, **fields) -> ExchangeOrder:
    values = {
        "exchange_order_id": "555",
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "status": "filled",
        "qty": order.qty,
        "filled_qty": order.qty,
        "average_price": Decimal("65000"),
        "price": None,
        "trigger_price": None,
        "fee": Decimal("0.325"),
        "realized_pnl": Decimal("0"),
        "reduce_only": False,
        "position_side": "both",
        "updated_ms": 1,
    }
    return ExchangeOrder(**{**values, **fields})


def test_the_same_report_applied_twice_records_one_fill():
    order = OrderFactory(status="submitted", qty=Decimal("0.01"), symbol=BTC)

    order_apply(order=order, state=_state(order))
    order_apply(order=order, state=_state(order))

    assert Fill.objects.filter(order=order).count() == 1
    assert (order.status, order.filled_qty, order.exchange_order_id) == ("filled", Decimal("0.01"), "555")


def test_an_older_report_after_a_newer_one_changes_nothing():
    order = OrderFactory(status="submitted", qty=Decimal("0.01"), symbol=BTC)
    order_apply(order=order, state=_state(order))

    order_apply(order=order, state=_state(order, status="open", filled_qty=Decimal("0")))

    assert (order.status, order.filled_qty) == ("filled", Decimal("0.01"))


def test_a_partial_then_full_fill_records_each_increment_at_its_own_price():
    order = OrderFactory(status="submitted", qty=Decimal("0.02"), symbol=BTC)

    order_apply(order=order, state=_state(order, status="partially_filled", filled_qty=Decimal("0.01")))
    order_apply(order=order, state=_state(order, filled_qty=Decimal("0.02"), average_price=Decimal("65500")))

    fills = list(Fill.objects.filter(order=order).order_by("id").values_list("qty", "price"))
    assert fills == [(Decimal("0.01"), Decimal("65000")), (Decimal("0.01"), Decimal("66000"))]
    assert order.status == "filled"


def test_a_position_another_writer_just_opened_is_updated_not_duplicated():
    existing = PositionFactory(symbol=BTC, side="long", qty=Decimal("0.01"))

    position = position_open_or_update(
        account=existing.account,
        symbol=BTC,
        side="long",
        fields={"qty": Decimal("0.02"), "entry_price": Decimal("65000")},
        opened_at=timezone.now(),
        create_only={"leverage": 5},
    )

    assert position.pk == existing.pk
    assert Position.objects.get().qty == Decimal("0.02")
