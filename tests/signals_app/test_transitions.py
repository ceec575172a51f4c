"""A signal moves through the pipeline stages one checked step at a time."""

import pytest

from signals_app.models import Signal
from signals_app.rules import SIGNAL_TRANSITIONS
from signals_app.services import signal_transition
from tests.factories import SignalFactory
from trading.models import AuditEvent
from trading.transitions import InvalidTransition

pytestmark = pytest.mark.django_db
S = Signal.Status


def test_the_manual_path_stamps_every_stage(actor):
    signal = SignalFactory()
    for stage in (S.VALIDATED, S.AWAITING_CONFIRMATION, S.APPROVED, S.EXECUTING, S.EXECUTED):
        signal_transition(signal=signal, to=stage, actor=actor)
    signal.refresh_from_db()
    assert signal.status == S.EXECUTED
    stamps = [
        signal.received_at,
        signal.validated_at,
        signal.awaiting_confirmation_at,
        signal.approved_at,
        signal.executing_at,
        signal.executed_at,
    ]
    assert all(stamps)
    assert stamps == sorted(stamps)


def test_each_stage_is_audited(actor):
    signal = SignalFactory()
    signal_transition(signal=signal, to=S.VALIDATED, actor=actor)
    signal_transition(signal=signal, to=S.EXECUTING, actor=actor)
    actions = list(AuditEvent.objects.filter(object_id=str(signal.pk)).values_list("after__status", flat=True))
    assert sorted(actions) == ["executing", "validated"]


def test_a_rejection_stores_its_reason(actor):
    signal = SignalFactory()
    signal_transition(signal=signal, to=S.REJECTED, actor=actor, reason="symbol DOGE/USDT:USDT is not whitelisted")
    signal.refresh_from_db()
    assert signal.rejection_reason == "symbol DOGE/USDT:USDT is not whitelisted"
    assert signal.rejected_at is not None


def test_a_signal_cannot_skip_validation(actor):
    signal = SignalFactory()
    with pytest.raises(InvalidTransition, match="from 'received' to 'executing'"):
        signal_transition(signal=signal, to=S.EXECUTING, actor=actor)


def test_an_expired_signal_cannot_be_approved(actor):
    signal = SignalFactory(status=S.EXPIRED)
    with pytest.raises(InvalidTransition):
        signal_transition(signal=signal, to=S.APPROVED, actor=actor)


def test_only_a_signal_awaiting_confirmation_can_expire(actor):
    with pytest.raises(InvalidTransition):
        signal_transition(signal=SignalFactory(status=S.EXECUTING), to=S.EXPIRED, actor=actor)


@pytest.mark.parametrize("final", [S.EXECUTED, S.REJECTED, S.FAILED, S.EXPIRED])
def test_final_stages_have_no_way_out(final):
    assert SIGNAL_TRANSITIONS[final] == frozenset()


def test_every_stage_has_a_transition_entry():
    assert set(SIGNAL_TRANSITIONS) == set(S.values)
