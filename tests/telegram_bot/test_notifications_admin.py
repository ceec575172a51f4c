"""The outbox in the back-office: staff see every notification and put failed ones back in the queue."""

from __future__ import annotations

import pytest

from telegram_bot.models import Notification
from tests.admin_helpers import audit_events, run_action
from tests.factories import TelegramTraderFactory

pytestmark = pytest.mark.django_db
NS = Notification.Status


def notification(status: str, key: str) -> Notification:
    user = TelegramTraderFactory()
    return Notification.objects.create(
        telegram_user=user,
        chat_id=user.telegram_id,
        kind=Notification.Kind.ALERT,
        dedupe_key=key,
        text="Stream down",
        status=status,
        last_error="403: Forbidden: bot was blocked by the user" if status == NS.FAILED else "",
    )


def test_retry_now_queues_a_failed_notification_again_and_audits_it(staff_client):
    failed = notification(NS.FAILED, "a")

    run_action(staff_client, Notification, "retry_now", [failed])

    failed.refresh_from_db()
    assert failed.status == NS.PENDING
    assert failed.next_attempt_at is not None
    [event] = audit_events("notification.retry", failed)
    assert event.before["status"] == NS.FAILED


def test_retry_now_leaves_sent_and_in_flight_notifications_alone(staff_client):
    sent, sending = notification(NS.SENT, "b"), notification(NS.SENDING, "c")

    run_action(staff_client, Notification, "retry_now", [sent, sending])

    assert [row.status for row in Notification.objects.order_by("id")] == [NS.SENT, NS.SENDING]
