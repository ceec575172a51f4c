"""The TradingView webhook, POST /webhook/tradingview and /webhook/tradingview/<token>, seen from outside.

Every test posts a raw body through Django's test client as TradingView would (application/json or
text/plain) and reads the outcome from the response and the database. Signals are processed inline in
the suite (tests/settings.py), so processing has finished when the response returns. Symbols resolve
against the shipped market snapshot (BTC, LTC, ADA and SOL swaps).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.utils import timezone

from signals_app import webhook_security
from signals_app.models import Signal
from tests.factories import SymbolProfileFactory, TradingAccountFactory
from trading.audit import Actor
from trading.models import AuditEvent, Order
from trading.services import account_rotate_webhook_secret

pytestmark = pytest.mark.django_db

WEBHOOK = "/webhook/tradingview"
BTC = "BTC/USDT:USDT"
TRADINGVIEW_IPS = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]
OTHER_IP = "203.0.113.9"
PROXY_IP = "10.0.0.5"
MAX_BODY = 64 * 1024
ON_POSTGRESQL = connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The failed-login counters live in the cache (locmem in tests); no test sees another's."""
    cache.clear()
    webhook_security._failures_seen.clear()
    yield
    cache.clear()
    webhook_security._failures_seen.clear()


def account_with_secret(**fields):
    """An active account with a webhook secret installed; returns (account, secret)."""
    account = TradingAccountFactory(**fields)
    secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    return account, secret


@pytest.fixture
def account():
    return TradingAccountFactory()


@pytest.fixture
def secret(account):
    return account_rotate_webhook_secret(account=account, actor=Actor.system("test"))


def alert(secret: str | None = None, **fields) -> dict:
    """A valid v1 alert: a market buy of BTC, with the secret in the body when one is given."""
    body = {"symbol": "BINANCE:BTCUSDT.P", "action": "buy", **fields}
    if secret is not None:
        body = {"secret": secret, **body}
    return body


def post(client, body, *, path: str = WEBHOOK, content_type: str = "application/json", **extra):
    """POST the body as TradingView would: bytes or text as they are, anything else as JSON text."""
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(path, raw, content_type=content_type, **extra)


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def outside_minute_boundary() -> None:
    """Failed logins are counted per clock minute; keep a short test from straddling two minutes."""
    if time.time() % 60 > 58.5:
        time.sleep(60 - time.time() % 60 + 0.05)


def refuse_inserts(execute, sql, params, many, context):
    """A database that answers reads but cannot store anything (disk full, failover in progress)."""
    if sql.lstrip().upper().startswith("INSERT"):
        raise OperationalError("could not write: the database is unreachable")
    return execute(sql, params, many, context)


def refuse_everything(execute, sql, params, many, context):
    raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


# --- Authentication ------------------------------------------------------------------------------


def test_the_secret_in_the_body_authenticates(client, account, secret):
    response = post(client, alert(secret))

    assert response.status_code == 202
    assert Signal.objects.get().account == account


def test_the_secret_as_the_url_token_authenticates(client, account, secret):
    response = post(client, alert(), path=f"{WEBHOOK}/{secret}")

    assert response.status_code == 202
    assert Signal.objects.get().account == account


def test_the_secret_in_the_x_tradingview_token_header_authenticates(client, account, secret):
    response = post(client, alert(), HTTP_X_TRADINGVIEW_TOKEN=secret)

    assert response.status_code == 202
    assert Signal.objects.get().account == account


def test_each_secret_stores_the_alert_on_its_own_account(client):
    first, first_secret = account_with_secret()
    second, second_secret = account_with_secret()

    post(client, alert(first_secret, alert_id="a"))
    post(client, alert(), path=f"{WEBHOOK}/{second_secret}")

    assert Signal.objects.get(account=first).idempotency_key == "a"
    assert Signal.objects.filter(account=second).count() == 1


def test_the_previous_secret_stays_valid_after_a_rotation(client, account, secret):
    account_rotate_webhook_secret(account=account, actor=Actor.system("test"))

    response = post(client, alert(secret))

    assert response.status_code == 202


def test_the_new_secret_is_valid_at_once_after_a_rotation(client, account, secret):
    new_secret = account_rotate_webhook_secret(account=account, actor=Actor.system("test"))

    response = post(client, alert(new_secret))

    assert response.status_code == 202


def test_a_secret_two_rotations_old_is_refused(client, account, secret):
    account_rotate_webhook_secret(account=account, actor=Actor.system("test"))
    account_rotate_webhook_secret(account=account, actor=Actor.system("test"))

    response = post(client, alert(secret))

    assert response.status_code == 401
    assert not Signal.objects.exists()


@pytest.mark.parametrize(
    ("body", "path", "extra"),
    [
        pytest.param(alert("wrong-secret"), WEBHOOK, {}, id="wrong-body-secret"),
        pytest.param(alert(), f"{WEBHOOK}/wrong-secret", {}, id="wrong-url-token"),
        pytest.param(alert(), WEBHOOK, {"HTTP_X_TRADINGVIEW_TOKEN": "wrong-secret"}, id="wrong-header"),
        pytest.param(alert(), WEBHOOK, {}, id="missing"),
        pytest.param(alert(""), WEBHOOK, {}, id="empty"),
        pytest.param(b"{not json", WEBHOOK, {}, id="invalid-json-without-token"),
    ],
)
def test_a_wrong_or_missing_secret_is_refused_with_401_and_nothing_is_stored(client, secret, body, path, extra):
    response = post(client, body, path=path, **extra)

    assert response.status_code == 401
    assert "error" in response.json()
    assert not Signal.objects.exists()


def test_the_secret_of_a_deactivated_account_is_refused(client):
    account, secret = account_with_secret(is_active=False)

    response = post(client, alert(secret))

    assert response.status_code == 401
    assert not Signal.objects.exists()


def test_a_refused_secret_is_logged_with_the_source_address(client, secret, caplog):
    with caplog.at_level(logging.WARNING, logger="signals_app"):
        post(client, alert("wrong-secret"), REMOTE_ADDR="198.51.100.7")

    refusals = [record for record in caplog.records if record.name.startswith("signals_app")]
    assert len(refusals) == 1
    assert refusals[0].levelno == logging.WARNING
    assert "198.51.100.7" in refusals[0].getMessage()


@pytest.mark.parametrize(
    "where",
    [
        "body",
        pytest.param("url-token"),
    ],
)
def test_a_refused_secret_is_not_written_to_the_log(client, secret, caplog, where):
    guess = "guessed-secret-0123"
    with caplog.at_level(logging.DEBUG):
        if where == "body":
            post(client, alert(guess))
        else:
            post(client, alert(), path=f"{WEBHOOK}/{guess}")

    assert guess not in caplog.text


def test_a_valid_url_token_is_not_written_to_the_log(client, secret, caplog):
    with caplog.at_level(logging.DEBUG):
        response = post(client, alert(action="hodl"), path=f"{WEBHOOK}/{secret}")

    assert response.status_code == 400
    assert secret not in caplog.text


def test_after_the_failure_limit_an_address_gets_429_even_with_the_right_secret(client, settings, secret):
    settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE = 3
    outside_minute_boundary()
    failures = [post(client, alert("wrong"), REMOTE_ADDR=OTHER_IP).status_code for _ in range(3)]

    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP)

    assert failures == [401, 401, 401]
    assert response.status_code == 429
    assert not Signal.objects.exists()


def test_failures_below_the_limit_do_not_block_the_right_secret(client, settings, secret):
    settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE = 3
    outside_minute_boundary()
    for _ in range(2):
        post(client, alert("wrong"), REMOTE_ADDR=OTHER_IP)

    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP)

    assert response.status_code == 202


def test_the_failure_limit_of_one_address_does_not_affect_another(client, settings, secret):
    settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE = 3
    outside_minute_boundary()
    for _ in range(3):
        post(client, alert("wrong"), REMOTE_ADDR=OTHER_IP)

    response = post(client, alert(secret), REMOTE_ADDR="198.51.100.7")

    assert response.status_code == 202


def test_a_forged_forwarded_for_does_not_escape_the_failure_limit(client, settings, secret):
    settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE = 3
    outside_minute_boundary()
    for index in range(3):
        post(client, alert("wrong"), REMOTE_ADDR=OTHER_IP, HTTP_X_FORWARDED_FOR=f"192.0.2.{index}")

    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP, HTTP_X_FORWARDED_FOR="192.0.2.99")

    assert response.status_code == 429


def test_authenticated_but_invalid_alerts_do_not_count_as_failed_logins(client, settings, secret):
    settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE = 2
    outside_minute_boundary()
    for index in range(3):
        post(client, alert(secret, action="hodl", alert_id=f"bad-{index}"), REMOTE_ADDR=OTHER_IP)

    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP)

    assert response.status_code == 202


def test_an_address_without_failures_is_let_through_without_reading_the_shared_counter(client, secret):
    with mock.patch.object(cache, "get", side_effect=AssertionError("the success path read the cache")):
        response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP)

    assert response.status_code == 202


def test_failures_counted_by_another_process_block_after_this_process_sees_one(client, settings, secret):
    settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE = 3
    outside_minute_boundary()
    minute = webhook_security._minute()
    cache.set(webhook_security._failure_key(OTHER_IP, minute), 3, timeout=120)  # counted by other processes

    admitted = post(client, alert("wrong"), REMOTE_ADDR=OTHER_IP)  # this process learns the count (4)
    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP)

    assert admitted.status_code == 401
    assert response.status_code == 429
    assert not Signal.objects.exists()


def test_a_reset_shared_counter_lifts_the_block_at_once(client, settings, secret):
    settings.WEBHOOK_AUTH_FAILURES_PER_MINUTE = 3
    outside_minute_boundary()
    for _ in range(3):
        post(client, alert("wrong"), REMOTE_ADDR=OTHER_IP)
    assert post(client, alert(secret), REMOTE_ADDR=OTHER_IP).status_code == 429

    cache.clear()  # an operator unblocks the address

    assert post(client, alert(secret), REMOTE_ADDR=OTHER_IP).status_code == 202


# --- Source-address allowlist --------------------------------------------------------------------


def test_the_allowlist_is_off_by_default(client, settings, secret):
    assert settings.WEBHOOK_IP_ALLOWLIST_ENABLED is False

    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP)

    assert response.status_code == 202


def test_the_default_allowlist_is_tradingviews_published_addresses(settings):
    assert sorted(settings.WEBHOOK_IP_ALLOWLIST) == sorted(TRADINGVIEW_IPS)


@pytest.mark.parametrize("address", TRADINGVIEW_IPS)
def test_with_the_allowlist_on_tradingviews_addresses_are_accepted(client, settings, secret, address):
    settings.WEBHOOK_IP_ALLOWLIST_ENABLED = True

    response = post(client, alert(secret), REMOTE_ADDR=address)

    assert response.status_code == 202
    assert Signal.objects.get().source_ip == address


def test_with_the_allowlist_on_another_address_gets_403_and_nothing_is_stored(client, settings, secret):
    settings.WEBHOOK_IP_ALLOWLIST_ENABLED = True

    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP)

    assert response.status_code == 403
    assert not Signal.objects.exists()


def test_forwarded_for_from_a_trusted_proxy_gives_the_client_address(client, settings, secret):
    settings.WEBHOOK_IP_ALLOWLIST_ENABLED = True
    settings.WEBHOOK_TRUSTED_PROXIES = [PROXY_IP]

    response = post(client, alert(secret), REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=TRADINGVIEW_IPS[0])

    assert response.status_code == 202
    assert Signal.objects.get().source_ip == TRADINGVIEW_IPS[0]


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(client, settings, secret):
    settings.WEBHOOK_IP_ALLOWLIST_ENABLED = True
    settings.WEBHOOK_TRUSTED_PROXIES = [PROXY_IP]

    response = post(client, alert(secret), REMOTE_ADDR=OTHER_IP, HTTP_X_FORWARDED_FOR=TRADINGVIEW_IPS[0])

    assert response.status_code == 403
    assert not Signal.objects.exists()


def test_a_forged_entry_left_of_what_the_trusted_proxy_saw_is_ignored(client, settings, secret):
    settings.WEBHOOK_IP_ALLOWLIST_ENABLED = True
    settings.WEBHOOK_TRUSTED_PROXIES = [PROXY_IP]
    forwarded = f"{TRADINGVIEW_IPS[0]}, {OTHER_IP}"  # the caller wrote the first, our proxy appended the second

    response = post(client, alert(secret), REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_FOR=forwarded)

    assert response.status_code == 403


def test_the_stored_source_address_ignores_forwarded_for_from_an_untrusted_peer(client, secret):
    post(client, alert(secret), REMOTE_ADDR=OTHER_IP, HTTP_X_FORWARDED_FOR=TRADINGVIEW_IPS[0])

    assert Signal.objects.get().source_ip == OTHER_IP


# --- Bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "text/plain; charset=utf-8"])
def test_a_json_body_is_accepted_whatever_the_content_type(client, secret, content_type):
    response = post(client, alert(secret), content_type=content_type)

    assert response.status_code == 202
    assert Signal.objects.get().symbol == BTC


def test_a_body_over_64_kib_is_refused_with_413_and_nothing_is_stored(client, secret):
    body = json.dumps(alert(secret)).encode()
    body += b" " * (MAX_BODY + 1 - len(body))

    response = post(client, body)

    assert response.status_code == 413
    assert not Signal.objects.exists()


def test_a_body_of_exactly_64_kib_is_accepted(client, secret):
    body = json.dumps(alert(secret)).encode()
    body += b" " * (MAX_BODY - len(body))

    response = post(client, body)

    assert response.status_code == 202


# --- Accepted alerts -----------------------------------------------------------------------------


def test_an_accepted_alert_answers_202_with_the_signal_id_and_status(client, secret):
    response = post(client, alert(secret))

    signal = Signal.objects.get()
    assert response.status_code == 202
    assert response.json() == {"signal_id": signal.pk, "status": "received"}


def test_the_raw_body_is_stored_exactly_as_received(client, secret):
    # Odd spacing, key order, a literal and an escaped non-ASCII letter: parsing must not reshape any of it.
    raw = '{ "symbol" :"BTCUSDT.P",\n\t"action":"buy", "comment": "caf\u00e9 \\u00e9", "secret": "' + secret + '" }  '

    post(client, raw.encode(), content_type="text/plain")

    assert Signal.objects.get().raw_body == raw


def test_the_source_address_and_selected_request_headers_are_stored(client, secret):
    post(
        client,
        alert(secret),
        REMOTE_ADDR="198.51.100.7",
        HTTP_USER_AGENT="Go-http-client/1.1",
        HTTP_COOKIE="sessionid=abc",
        HTTP_AUTHORIZATION="Bearer abc",
    )

    signal = Signal.objects.get()
    assert signal.source_ip == "198.51.100.7"
    assert signal.headers["Content-Type"] == "application/json"
    assert signal.headers["User-Agent"] == "Go-http-client/1.1"
    assert "Cookie" not in signal.headers
    assert "Authorization" not in signal.headers


@pytest.mark.parametrize("ticker", ["BINANCE:BTCUSDT.P", "BINGX:BTCUSDT.PERP", "BTCUSDT", "BTC-USDT", BTC])
def test_tradingview_tickers_are_stored_as_the_bingx_market(client, secret, ticker):
    post(client, alert(secret, symbol=ticker))

    assert Signal.objects.get().symbol == BTC


def test_the_normalised_alert_is_stored(client, secret):
    sent_at = timezone.now().replace(microsecond=0)
    post(
        client,
        alert(
            secret,
            alert_id="ema|BTCUSDT|15|1700000000000",
            sent_at=iso(sent_at),
            order_type="limit",
            price="65000.5",
            size={"mode": "usdt", "value": 100},
            leverage=5,
            margin_mode="isolated",
            sl={"pct": "1.5"},
            tp=[{"pct": "1", "size_pct": 50}, {"price": "70000", "size_pct": 50}],
            confidence=0.8,
            strategy="ema-cross",
            timeframe="15",
            comment="hello",
        ),
    )

    signal = Signal.objects.get()
    assert (signal.symbol, signal.action, signal.order_type) == (BTC, "buy", "limit")
    assert signal.idempotency_key == "ema|BTCUSDT|15|1700000000000"
    assert signal.sent_at == sent_at
    assert signal.price == Decimal("65000.5") and isinstance(signal.price, Decimal)
    assert (signal.size_mode, signal.size_value) == ("usdt", Decimal("100"))
    assert (signal.leverage, signal.margin_mode) == (5, "isolated")
    assert (signal.sl_price, signal.sl_pct) == (None, Decimal("1.5"))
    assert [(level["price"], level["pct"], level["size_pct"]) for level in signal.tp_levels] == [
        (None, "1", "50"),
        ("70000", None, "50"),
    ]
    assert signal.confidence == Decimal("80")
    assert (signal.strategy, signal.timeframe, signal.comment) == ("ema-cross", "15", "hello")


def test_a_stop_loss_price_is_stored_as_a_price(client, secret):
    post(client, alert(secret, sl=64000))

    signal = Signal.objects.get()
    assert (signal.sl_price, signal.sl_pct) == (Decimal("64000"), None)


# --- Duplicates ----------------------------------------------------------------------------------


def test_the_same_alert_id_again_answers_200_with_the_original_signal(client, secret):
    first = post(client, alert(secret, alert_id="bar-1"))

    again = post(client, alert(secret, alert_id="bar-1"))

    original = Signal.objects.get()
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"signal_id": original.pk, "status": original.status, "duplicate": True}


def test_the_same_alert_id_again_places_no_second_order(client):
    account, secret = account_with_secret(auto_trade=True)
    SymbolProfileFactory(account=account, symbol=BTC)
    body = alert(secret, alert_id="bar-1", price="65000", size={"mode": "usdt", "value": "100"})
    post(client, body)
    orders = Order.objects.count()

    post(client, body)

    assert orders >= 1
    assert Order.objects.count() == orders
    assert Signal.objects.count() == 1


def test_the_same_alert_id_with_a_different_payload_is_a_409_conflict(client, secret):
    post(client, alert(secret, alert_id="bar-1", action="buy"))

    response = post(client, alert(secret, alert_id="bar-1", action="sell"))

    assert response.status_code == 409
    assert Signal.objects.get().action == "buy"


def test_the_same_alert_id_with_only_a_later_sent_at_is_a_duplicate(client, secret):
    now = timezone.now()
    post(client, alert(secret, alert_id="bar-1", sent_at=iso(now - timedelta(seconds=5))))

    response = post(client, alert(secret, alert_id="bar-1", sent_at=iso(now)))

    assert response.status_code == 200
    assert response.json()["duplicate"] is True


def test_the_same_alert_id_on_another_account_is_a_separate_signal(client):
    first, first_secret = account_with_secret()
    second, second_secret = account_with_secret()
    post(client, alert(first_secret, alert_id="bar-1"))

    response = post(client, alert(second_secret, alert_id="bar-1"))

    assert response.status_code == 202
    assert Signal.objects.filter(account=first).count() == Signal.objects.filter(account=second).count() == 1


def test_an_identical_alert_without_alert_id_within_the_window_is_a_duplicate(client, secret):
    first = post(client, alert(secret))

    again = post(client, alert(secret))

    assert again.status_code == 200
    assert again.json() == {**first.json(), "status": Signal.objects.get().status, "duplicate": True}


def test_a_resend_differing_only_in_sent_at_is_a_duplicate(client, secret):
    now = timezone.now()
    post(client, alert(secret, sent_at=iso(now - timedelta(seconds=5))))

    response = post(client, alert(secret, sent_at=iso(now)))

    assert response.status_code == 200
    assert Signal.objects.count() == 1


def test_a_different_alert_without_alert_id_is_a_new_signal(client, secret):
    post(client, alert(secret, price="65000"))

    response = post(client, alert(secret, price="65001"))

    assert response.status_code == 202
    assert Signal.objects.count() == 2


def test_an_identical_alert_near_the_end_of_the_window_is_still_a_duplicate(client, settings, secret):
    post(client, alert(secret))
    later = timezone.now() + timedelta(seconds=settings.WEBHOOK_DEDUPE_WINDOW_SECONDS - 5)

    with mock.patch("django.utils.timezone.now", return_value=later):
        response = post(client, alert(secret))

    assert response.status_code == 200
    assert Signal.objects.count() == 1


def test_an_identical_alert_after_the_window_is_a_new_signal(client, settings, secret):
    post(client, alert(secret))
    later = timezone.now() + timedelta(seconds=settings.WEBHOOK_DEDUPE_WINDOW_SECONDS + 1)

    with mock.patch("django.utils.timezone.now", return_value=later):
        response = post(client, alert(secret))

    assert response.status_code == 202
    assert Signal.objects.count() == 2


# --- Authenticated but invalid alerts ------------------------------------------------------------


def test_schema_problems_answer_400_listing_every_problem(client, secret):
    response = post(client, alert(secret, action="hodl", leverage=0, size={"mode": "lots", "value": 1}))

    assert response.status_code == 400
    fields = [error.split(":", 1)[0] for error in response.json()["errors"]]
    assert sorted(fields) == ["action", "leverage", "size.mode"]


def test_an_invalid_alert_is_stored_as_rejected_with_its_reasons(client, secret):
    response = post(client, alert(secret, action="hodl", leverage=0))

    signal = Signal.objects.get()
    assert response.json()["signal_id"] == signal.pk
    assert response.json()["status"] == signal.status == Signal.Status.REJECTED
    for error in response.json()["errors"]:
        assert error in signal.rejection_reason


def test_an_invalid_alert_is_audited(client, secret):
    post(client, alert(secret, action="hodl"))

    signal = Signal.objects.get()
    rejection = AuditEvent.objects.get(object_id=str(signal.pk), action="signal.status")
    assert rejection.actor_type == "webhook"
    assert rejection.after["status"] == Signal.Status.REJECTED
    assert "action" in rejection.reason


def test_an_unknown_symbol_is_rejected_naming_the_symbol(client, secret):
    response = post(client, alert(secret, symbol="BINANCE:DOGEUSDT.P"))

    assert response.status_code == 400
    assert [error for error in response.json()["errors"] if "DOGEUSDT" in error]
    assert "DOGEUSDT" in Signal.objects.get().rejection_reason


def test_an_unexpanded_placeholder_is_rejected_naming_it(client, secret):
    response = post(client, alert(secret, symbol="{{ticker}}"))

    assert response.status_code == 400
    assert response.json()["errors"] == ["symbol: TradingView did not expand the placeholder {{ticker}}"]
    assert Signal.objects.get().status == Signal.Status.REJECTED


def test_a_sent_at_older_than_max_lag_s_is_rejected_as_stale(client, secret):
    sent_at = timezone.now() - timedelta(seconds=120)

    response = post(client, alert(secret, sent_at=iso(sent_at), max_lag_s=30))

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error.startswith("sent_at:") and "30 s" in error
    assert Signal.objects.get().status == Signal.Status.REJECTED


def test_a_sent_at_within_max_lag_s_is_accepted(client, secret):
    response = post(client, alert(secret, sent_at=iso(timezone.now() - timedelta(seconds=5)), max_lag_s=30))

    assert response.status_code == 202


def test_several_problems_are_all_reported_at_once(client, secret):
    stale = iso(timezone.now() - timedelta(seconds=600))

    response = post(client, alert(secret, symbol="NOPEUSDT", action="hodl", price="{{close}}", sent_at=stale))

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert sorted(error.split(":", 1)[0] for error in errors) == ["action", "price", "sent_at", "symbol"]
    reason = Signal.objects.get().rejection_reason
    assert all(error in reason for error in errors)


def test_an_alert_naming_another_account_is_rejected(client, account, secret):
    response = post(client, alert(secret, account="someone-else"))

    assert response.status_code == 400
    assert [error for error in response.json()["errors"] if error.startswith("account:")]


def test_invalid_json_with_a_valid_url_token_is_stored_as_rejected(client, secret):
    response = post(client, b'{"symbol": "BTCUSDT", "action": ', path=f"{WEBHOOK}/{secret}", content_type="text/plain")

    signal = Signal.objects.get()
    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("body: not valid JSON")
    assert signal.status == Signal.Status.REJECTED
    assert signal.raw_body == '{"symbol": "BTCUSDT", "action": '
    assert "not valid JSON" in signal.rejection_reason


def test_resending_the_same_invalid_body_is_a_duplicate_of_it(client, secret):
    first = post(client, b"{oops", path=f"{WEBHOOK}/{secret}")

    again = post(client, b"{oops", path=f"{WEBHOOK}/{secret}")

    assert again.status_code == 200
    assert again.json() == {"signal_id": first.json()["signal_id"], "status": "rejected", "duplicate": True}
    assert Signal.objects.count() == 1


def test_a_body_with_a_raw_nul_character_is_stored_as_rejected(client, secret):
    response = post(client, b'{"symbol": "BTCUSDT", \x00 "action": "buy"}', path=f"{WEBHOOK}/{secret}")

    assert response.status_code == 400
    assert Signal.objects.get().status == Signal.Status.REJECTED


def test_an_alert_with_an_escaped_nul_character_is_stored_not_refused_with_503(client, secret):
    response = post(client, alert(secret, comment="before\u0000after"))

    assert response.status_code in (202, 400)
    assert Signal.objects.count() == 1


# --- TVTelegramBingX (legacy) payloads -----------------------------------------------------------


def test_a_legacy_long_buy_is_accepted_as_a_buy(client, secret):
    response = post(client, {"secret": secret, "symbol": "BTCUSDT", "action": "LONG_BUY"}, content_type="text/plain")

    signal = Signal.objects.get()
    assert response.status_code == 202
    assert (signal.symbol, signal.action) == (BTC, "buy")


def test_a_legacy_actions_list_creates_one_signal_per_action_in_order(client, secret):
    response = post(client, {"secret": secret, "symbol": "BTCUSDT", "actions": ["SHORT_BUY", "LONG_BUY"]})

    signals = list(Signal.objects.order_by("id"))
    assert response.status_code == 202
    assert [signal.action for signal in signals] == ["close_short", "buy"]
    assert [item["signal_id"] for item in response.json()["signals"]] == [signal.pk for signal in signals]


def test_a_legacy_actions_list_sent_again_is_a_duplicate_of_every_signal(client, secret):
    body = {"secret": secret, "symbol": "BTCUSDT", "actions": ["SHORT_BUY", "LONG_BUY"]}
    post(client, body)

    response = post(client, body)

    assert response.status_code == 200
    assert [item["duplicate"] for item in response.json()["signals"]] == [True, True]
    assert Signal.objects.count() == 2


# --- Database outages ----------------------------------------------------------------------------


def test_a_database_that_cannot_store_the_alert_gives_503_and_no_signal(client, secret):
    with connection.execute_wrapper(refuse_inserts):
        response = post(client, alert(secret))

    assert response.status_code == 503
    assert not Signal.objects.exists()


def test_an_unreachable_database_gives_503_not_401(client, secret):
    with connection.execute_wrapper(refuse_everything):
        response = post(client, alert(secret))

    assert response.status_code == 503
    assert not Signal.objects.exists()


def test_a_legacy_actions_list_is_stored_whole_or_not_at_all_when_the_database_fails(client, secret):
    inserted = []

    def fail_the_second_signal(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT") and "signals_app_signal" in sql:
            inserted.append(sql)
            if len(inserted) == 2:
                raise OperationalError("the database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_the_second_signal):
        response = post(client, {"secret": secret, "symbol": "BTCUSDT", "actions": ["SHORT_BUY", "LONG_BUY"]})

    assert response.status_code == 503
    assert not Signal.objects.exists()


# --- OpenAPI schema ------------------------------------------------------------------------------


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_documents_both_webhook_paths(schema):
    assert "post" in schema["paths"]["/webhook/tradingview"]
    assert "post" in schema["paths"]["/webhook/tradingview/{token}"]


def test_only_the_token_path_documents_a_token_parameter(schema):
    def path_parameters(path):
        return [item["name"] for item in schema["paths"][path]["post"].get("parameters", []) if item["in"] == "path"]

    assert path_parameters("/webhook/tradingview") == []
    assert path_parameters("/webhook/tradingview/{token}") == ["token"]


def test_the_schema_documents_the_webhook_answers(schema):
    responses = schema["paths"]["/webhook/tradingview"]["post"]["responses"]

    assert {"200", "202", "400", "401", "403", "409", "413", "429", "503"} <= set(responses)


def test_the_schema_documents_the_payload_fields(schema):
    content = schema["paths"]["/webhook/tradingview"]["post"].get("requestBody", {}).get("content", {})
    assert "application/json" in content
    reference = content["application/json"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]["properties"]

    expected = {"secret", "alert_id", "sent_at", "max_lag_s", "symbol", "action", "size", "sl", "tp", "confidence"}
    assert expected <= set(fields)


def test_every_stored_alert_is_published_as_signals_raw(client, secret, django_capture_on_commit_callbacks):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("signals.raw", channel)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, alert(secret))

    message = async_to_sync(layer.receive)(channel)
    assert (message["topic"], message["signal_id"]) == ("signals.raw", response.json()["signal_id"])
