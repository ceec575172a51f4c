"""The signals back-office: what a signal's pages show of the alert as it arrived and what became of it.

Signals are read-only evidence: that staff can list, search, filter and view them but nobody can add,
edit or delete one, and that anonymous visitors are sent to the login page, is tested with every other
registered model in tests/tvbingx/test_admin_site.py.
"""

from __future__ import annotations

import pytest

from signals_app.models import Signal
from tests.admin_helpers import admin_url
from tests.factories import OrderFactory, SignalFactory

pytestmark = pytest.mark.django_db


# --- what a signal's pages show -----------------------------------------------------------------


def test_it_shows_the_raw_alert_body_as_received(staff_client):
    signal = SignalFactory(raw_body='{"symbol": "ETHUSDT.P", "action": "sell", "comment": "probe-7781"}')

    html = staff_client.get(admin_url(Signal, "change", signal.pk)).content.decode()

    assert "probe-7781" in html
    assert "<textarea" not in html  # shown, not editable


def test_it_escapes_the_raw_alert_body(staff_client):
    signal = SignalFactory(raw_body='<script>alert("x")</script>')

    html = staff_client.get(admin_url(Signal, "change", signal.pk)).content.decode()

    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;" in html


def test_it_shows_a_signals_orders_inline(staff_client):
    order = OrderFactory()

    response = staff_client.get(admin_url(Signal, "change", order.signal.pk))

    [inline] = response.context["inline_admin_formsets"]
    assert [form.instance for form in inline.formset.forms] == [order]
    assert order.client_order_id in response.content.decode()


def test_it_shortens_a_long_rejection_reason_in_the_changelist(staff_client):
    reason = "risk limit breached: " + "r" * 100
    SignalFactory(status=Signal.Status.REJECTED, rejection_reason=reason)

    html = staff_client.get(admin_url(Signal, "changelist")).content.decode()

    assert reason[:80] + "..." in html
    assert reason not in html


# --- the webhook secret inside raw bodies -----------------------------------------------------------

SECRET_BODY = '{"secret": "wh-very-secret-token-123", "symbol": "BTCUSDT", "action": "buy"}'


def test_the_signal_page_masks_the_webhook_secret_in_the_raw_body(staff_client):
    signal = SignalFactory(raw_body=SECRET_BODY)

    html = staff_client.get(admin_url(Signal, "change", signal.pk)).content.decode()

    assert "wh-very-secret-token-123" not in html
    assert "BTCUSDT" in html  # the rest of the body is shown


def test_the_stored_raw_body_keeps_the_secret_as_evidence():
    signal = SignalFactory(raw_body=SECRET_BODY)
    signal.refresh_from_db()
    assert signal.raw_body == SECRET_BODY


def test_signal_exports_mask_the_webhook_secret(staff_client):
    SignalFactory(raw_body=SECRET_BODY)

    response = staff_client.post(
        admin_url(Signal, "export"), {"format": "0", **{f"signalresource_{name}": "on" for name in ("id", "raw_body")}}
    )

    content = response.content.decode() if response.status_code == 200 else ""
    assert response.status_code == 200
    assert "wh-very-secret-token-123" not in content
    assert "***" in content
