"""Authentication as BingX does it (reference §1), seen through real ccxt and through raw signed requests."""

from __future__ import annotations

import ccxt
import pytest

from tests.fakes.bingx import bingx_signature, fake_bingx, signature_payload
from tests.fakes_tests.clients import signed_request, sync_client

BALANCE = "/openApi/swap/v3/user/balance"


def test_it_signs_bingxs_documented_test_vector():
    secret = "mheO6dR8ovSsxZQCOYEFCtelpuxcWGTfHw7te326y6jOwq5WpvFQ9JNljoTwBXZGv5It07m9RXSPpDQEK2w"
    payload = "symbol=BTC-USDT&timestamp=1667872120843&side=LONG&leverage=6"
    assert bingx_signature(secret, payload) == "4f581ecdb1fa09b9d6e57886b6f70cffed17f82b93399722939e49a38edec2bf"


def test_it_verifies_over_the_raw_query_with_values_percent_decoded():
    raw = "stopLoss=%7B%22stopPrice%22%3A45000%7D&symbol=BTC-USDT&signature=abc"
    assert signature_payload(raw) == ('stopLoss={"stopPrice":45000}&symbol=BTC-USDT', "abc")


def test_a_correctly_signed_ccxt_request_is_accepted_and_recorded_as_such():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        sync_client(bingx, account).fetch_balance()
        (request,) = bingx.requests_for(BALANCE)
    assert (request.method, request.api_key, request.signature_ok) == ("GET", "k1", True)
    assert "timestamp" in request.query


def test_a_wrong_secret_is_an_authentication_error():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        client.secret = "not-s1"
        with pytest.raises(ccxt.AuthenticationError, match="100001"):
            client.fetch_balance()
        assert bingx.requests_for(BALANCE)[-1].signature_ok is False


def test_an_unknown_api_key_is_an_authentication_error():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        client.apiKey = "nobody"
        with pytest.raises(ccxt.AuthenticationError, match="Incorrect apiKey"):
            client.fetch_balance()


def test_a_skewed_clock_surfaces_as_bad_symbol_like_bingxs_100421():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        bingx.set_clock_offset_ms(8000)
        with pytest.raises(ccxt.BadSymbol, match="timestamp mismatch"):
            client.fetch_balance()


def test_a_wider_recv_window_tolerates_the_skew():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        client = sync_client(bingx, account)
        bingx.set_clock_offset_ms(8000)
        assert client.fetch_balance({"recvWindow": 10000})["USDT"]["free"] == 10000.0


def test_the_server_time_follows_the_fakes_clock():
    with fake_bingx() as bingx:
        client = sync_client(bingx, load_markets=False)
        before = client.milliseconds()
        bingx.set_clock_offset_ms(60_000)
        assert client.fetch_time() - before >= 60_000


def test_unknown_params_are_ignored_and_post_params_come_from_the_query():
    with fake_bingx() as bingx:
        account = bingx.add_account(api_key="k1", api_secret="s1")
        status, body = signed_request(
            bingx,
            account,
            "POST",
            "/openApi/swap/v2/trade/leverage",
            {"symbol": "BTC-USDT", "side": "BOTH", "leverage": 7, "type": "swap"},
        )
    assert (status, body["code"], body["data"]["leverage"]) == (200, 0, 7)
