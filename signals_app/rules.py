"""Pure rules for signals: which pipeline stage may follow which."""

from signals_app.models import Signal

S = Signal.Status

# received -> validated -> (risk-checked) -> executing (auto) or awaiting_confirmation (manual)
# -> executed | rejected | failed | expired. Final statuses have no way out.
SIGNAL_TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.VALIDATED, S.REJECTED, S.FAILED}),
    S.VALIDATED: frozenset({S.AWAITING_CONFIRMATION, S.EXECUTING, S.REJECTED, S.FAILED}),
    S.AWAITING_CONFIRMATION: frozenset({S.APPROVED, S.REJECTED, S.EXPIRED}),
    S.APPROVED: frozenset({S.EXECUTING, S.REJECTED, S.FAILED}),
    S.EXECUTING: frozenset({S.EXECUTED, S.REJECTED, S.FAILED}),
    S.EXECUTED: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}
