"""Order and position status changes: allowed, forbidden, audited, atomic and idempotent."""

import threading

import pytest
from django.db import DataError, connection

from tests.factories import OrderFactory, PositionFactory
from trading.audit import Actor
from trading.models import AuditEvent, Order, Position
from trading.rules import ORDER_TRANSITIONS
from trading.services import order_transition, position_close
from trading.transitions import InvalidTransition, check_transition

pytestmark = pytest.mark.django_db
S = Order.Status


def test_an_allowed_order_transition_changes_the_status_and_stamps_its_time(actor):
    order = OrderFactory()
    assert order_transition(order=order, to=S.SUBMITTED, actor=actor) is True
    order.refresh_from_db()
    assert order.status == S.SUBMITTED
    assert order.submitted_at is not None


def test_a_transition_writes_an_audit_event_with_actor_before_and_after():
    order = OrderFactory()
    order_transition(order=order, to=S.SUBMITTED, actor=Actor.telegram(4242, "alice"), reason="approved by hand")
    event = AuditEvent.objects.get(object_type="trading.order", object_id=str(order.pk))
    assert (event.actor_type, event.actor_id, event.actor_label) == ("telegram", "4242", "alice")
    assert event.action == "order.status"
    assert event.before["status"] == "new"
    assert event.after["status"] == "submitted"
    assert event.reason == "approved by hand"


def test_a_forbidden_transition_raises_a_clear_error_and_changes_nothing(actor):
    order = OrderFactory(status=S.FILLED)
    with pytest.raises(InvalidTransition, match="cannot move from 'filled' to 'open'.*final status"):
        order_transition(order=order, to=S.OPEN, actor=actor)
    order.refresh_from_db()
    assert order.status == S.FILLED
    assert not AuditEvent.objects.exists()


def test_the_error_lists_the_statuses_that_are_allowed(actor):
    order = OrderFactory(status=S.NEW)
    with pytest.raises(InvalidTransition) as raised:
        order_transition(order=order, to=S.FILLED, actor=actor)
    assert "allowed from 'new': canceled, rejected, submitted, unknown" in str(raised.value)


def test_moving_to_the_current_status_is_a_no_op_without_audit(actor):
    order = OrderFactory(status=S.OPEN)
    assert order_transition(order=order, to=S.OPEN, actor=actor) is False
    assert not AuditEvent.objects.exists()


def test_a_rejection_keeps_the_exchange_reason(actor):
    order = OrderFactory(status=S.SUBMITTED)
    order_transition(order=order, to=S.REJECTED, actor=actor, reason="101204 insufficient margin")
    order.refresh_from_db()
    assert order.error_text == "101204 insufficient margin"
    assert order.rejected_at is not None


def test_an_unknown_order_can_return_to_new_once_proved_absent(actor):
    order = OrderFactory(status=S.UNKNOWN)
    assert order_transition(order=order, to=S.NEW, actor=actor, reason="lookup by client id: absent")


def test_the_in_memory_object_follows_the_database(actor):
    order = OrderFactory()
    order_transition(order=order, to=S.SUBMITTED, actor=actor)
    assert order.status == S.SUBMITTED
    assert order.submitted_at is not None


@pytest.mark.parametrize("final", [S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED])
def test_final_order_statuses_have_no_way_out(final):
    assert ORDER_TRANSITIONS[final] == frozenset()


def test_every_order_status_has_a_transition_entry():
    assert set(ORDER_TRANSITIONS) == set(S.values)
    for targets in ORDER_TRANSITIONS.values():
        assert targets <= set(S.values)


def test_check_transition_is_pure_and_reports_no_ops():
    assert check_transition(ORDER_TRANSITIONS, "new", "submitted") is True
    assert check_transition(ORDER_TRANSITIONS, "new", "new") is False
    with pytest.raises(ValueError):
        check_transition(ORDER_TRANSITIONS, "filled", "new")


def test_closing_a_position_records_when_and_why(actor):
    position = PositionFactory()
    assert position_close(position=position, reason=Position.CloseReason.STOP_LOSS, actor=actor)
    position.refresh_from_db()
    assert position.status == Position.Status.CLOSED
    assert position.close_reason == "stop_loss"
    assert position.closed_at is not None
    assert AuditEvent.objects.filter(action="position.status").count() == 1


def test_closing_a_closed_position_again_is_a_no_op(actor):
    position = PositionFactory()
    position_close(position=position, reason="manual", actor=actor)
    assert position_close(position=position, reason="manual", actor=actor) is False
    assert AuditEvent.objects.filter(action="position.status").count() == 1


def test_a_position_close_needs_a_known_reason(actor):
    with pytest.raises(ValueError, match="not a close reason"):
        position_close(position=PositionFactory(), reason="because", actor=actor)


@pytest.mark.postgres
def test_a_failed_audit_write_rolls_back_the_status_change():
    order = OrderFactory()
    # PostgreSQL enforces the column length, so this audit row cannot be written.
    too_long = Actor("admin", "1", "x" * 151)
    with pytest.raises(DataError):
        order_transition(order=order, to=S.SUBMITTED, actor=too_long)
    order.refresh_from_db()
    assert order.status == S.NEW


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_order_cannot_both_move_it():
    order = OrderFactory()
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def move(target: str) -> None:
        try:
            barrier.wait()
            order_transition(order=Order.objects.get(pk=order.pk), to=target, actor=Actor.system(target))
            outcomes.append(f"ok:{target}")
        except InvalidTransition:
            outcomes.append(f"refused:{target}")
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(target,)) for target in (S.CANCELED, S.REJECTED)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcome.split(":")[0] for outcome in outcomes) == ["ok", "refused"]
    order.refresh_from_db()
    assert f"ok:{order.status}" in outcomes
    assert AuditEvent.objects.filter(action="order.status").count() == 1
