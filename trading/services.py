"""Business operations on accounts, orders and positions; called alike by admin, tasks, bot and commands."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from trading.audit import Actor, audit_record, snapshot
from trading.burst_sql import account_lock_sql
from trading.models import Order, Position, RiskLimits, TradingAccount
from trading.rules import ORDER_TRANSITIONS, POSITION_TRANSITIONS, client_order_id_for
from trading.secrets import webhook_secret_digest, webhook_secret_generate, webhook_secret_matches
from trading.transitions import apply_transition
from tvbingx.fields import EncryptedTextField, rotate_value


def order_transition(*, order: Order, to: str, actor: Actor, reason: str = "", changes: dict | None = None) -> bool:
    changes = dict(changes or {})
    if to == Order.Status.REJECTED and reason:
        changes.setdefault("error_text", reason)
    return apply_transition(order, to=to, table=ORDER_TRANSITIONS, actor=actor, reason=reason, changes=changes)


def order_for_leg(*, account: TradingAccount, origin_pk, leg: str, signal=None, **fields) -> Order:
    """The order of one leg of a trade, created on first call: its client order id comes from the account, the
    origin (a signal, an entry, a flatten) and the leg, so asking again returns the same row, never a second one."""
    client_order_id = client_order_id_for(account_id=account.pk, signal_id=origin_pk, leg=leg)
    order, _ = Order.objects.get_or_create(
        client_order_id=client_order_id, defaults={"account": account, "signal": signal, **fields}
    )
    return order


def signal_of(origin):
    """The signal behind an order's origin, or None for origins that are no signal (a flatten, a manual order)."""
    return origin if hasattr(origin, "_meta") else None


def account_positions_lock(account: TradingAccount) -> None:
    """Take the account's lock for writing its positions, until the transaction ends.

    Writers that lock several of an account's rows at once (the stream's bursts: orders, then positions;
    ``positions_sync``: positions, then a close or an insert) take it first, so they wait for each other
    instead of deadlocking: with the stream's follow-ups on their own thread, the poller and the resync,
    several of them run at once. Plain reads of the account are not blocked (PostgreSQL's MVCC).
    """
    if connection.vendor != "postgresql":
        return  # SQLite has no row locks: its transactions take the database's one write lock in turn
    # Plain SQL, the statement the stream's bursts send with their first reads (``burst_rows_locked``).
    with connection.cursor() as cursor:
        cursor.execute(account_lock_sql(), [account.pk])


def position_close(*, position: Position, reason: str, actor: Actor, realized_pnl=None) -> bool:
    """Mark a position closed with its cause; closing a closed position is a no-op."""
    return apply_transition(
        position,
        to=Position.Status.CLOSED,
        table=POSITION_TRANSITIONS,
        actor=actor,
        reason=reason,
        changes=position_close_changes(reason=reason, realized_pnl=realized_pnl),
    )


def position_close_changes(*, reason: str, realized_pnl=None) -> dict:
    """What closing a position sets besides its status (for ``position_close`` and the stream's bursts)."""
    if reason not in Position.CloseReason.values:
        raise ValueError(f"'{reason}' is not a close reason; accepted: {', '.join(Position.CloseReason.values)}.")
    changes = {"closed_at": timezone.now(), "close_reason": reason, "qty": 0, "unrealized_pnl": 0}
    if realized_pnl is not None:
        changes["realized_pnl"] = realized_pnl
    return changes


def account_set_api_credentials(*, account: TradingAccount, api_key: str, api_secret: str, actor: Actor) -> None:
    """Store a new key pair (encrypted). The audit row records that it changed, never the values."""
    with transaction.atomic():
        before = snapshot(account)
        account.api_key, account.api_secret = api_key, api_secret
        account.save(update_fields=["api_key", "api_secret", "updated_at"])
        audit_record(
            actor=actor, action="tradingaccount.credentials", instance=account, before=before, after=snapshot(account)
        )


def account_rotate_webhook_secret(*, account: TradingAccount, actor: Actor, new_secret: str | None = None) -> str:
    """Install a new webhook secret; the current one stays valid as the previous one until the next rotation.

    Returns the new secret in clear: the only time it is ever shown.
    """
    secret = new_secret or webhook_secret_generate()
    with transaction.atomic():
        locked = TradingAccount.objects.select_for_update().get(pk=account.pk)
        locked.webhook_secret_previous_hash = locked.webhook_secret_hash
        locked.webhook_secret_hash = webhook_secret_digest(secret)
        locked.webhook_secret_rotated_at = timezone.now()
        locked.save(update_fields=["webhook_secret_hash", "webhook_secret_previous_hash", "webhook_secret_rotated_at"])
        audit_record(actor=actor, action="tradingaccount.webhook_secret_rotated", instance=locked)
    account.refresh_from_db()
    return secret


def account_webhook_secret_valid(*, account: TradingAccount, secret: str) -> bool:
    return webhook_secret_matches(secret, account.webhook_secret_hash, account.webhook_secret_previous_hash)


@dataclass
class DefaultAccountResult:
    account: TradingAccount
    created: bool
    changes: list[str]


def account_ensure_default(*, actor: Actor) -> DefaultAccountResult:
    """Create the default account (TRADING_DEFAULT_USERNAME) and its risk limits from the environment.

    Idempotent: an existing account keeps what the admin set, except that credentials and the webhook
    secret given in the environment are installed when they differ from what is stored.
    """
    changes: list[str] = []
    with transaction.atomic():
        account, created = TradingAccount.objects.get_or_create(
            name=settings.TRADING_DEFAULT_USERNAME,
            defaults={"subaccount_id": settings.BINGX_SUBACCOUNT_ID},
        )
        if created:
            audit_record(actor=actor, action="tradingaccount.created", instance=account, after=snapshot(account))
            changes.append("account created")
        RiskLimits.objects.get_or_create(account=account)
        key, secret = settings.BINGX_API_KEY, settings.BINGX_API_SECRET
        if key and secret and (account.api_key, account.api_secret) != (key, secret):
            account_set_api_credentials(account=account, api_key=key, api_secret=secret, actor=actor)
            changes.append("API credentials installed from BINGX_API_KEY/BINGX_API_SECRET")
        token = settings.TRADINGVIEW_WEBHOOK_TOKEN
        if token and account.webhook_secret_hash != webhook_secret_digest(token):
            account_rotate_webhook_secret(account=account, actor=actor, new_secret=token)
            changes.append("webhook secret installed from TRADINGVIEW_WEBHOOK_TOKEN")
    return DefaultAccountResult(account=account, created=created, changes=changes)


def _account_flag_set(
    *, account: TradingAccount, flag: str, enabled: bool, action: str, actor: Actor, reason: str
) -> bool:
    """Set one boolean switch of an account under a row lock, audited; False when it already had that value."""
    with transaction.atomic():
        locked = TradingAccount.objects.select_for_update().get(pk=account.pk)
        if getattr(locked, flag) == enabled:
            return False
        setattr(locked, flag, enabled)
        locked.save(update_fields=[flag, "updated_at"])
        audit_record(
            actor=actor,
            action=action,
            instance=locked,
            before={flag: not enabled},
            after={flag: enabled},
            reason=reason,
        )
    setattr(account, flag, enabled)
    return True


def account_set_trading_enabled(*, account: TradingAccount, enabled: bool, actor: Actor, reason: str = "") -> bool:
    """Flip the kill switch; returns False when it was already in that position."""
    action = "tradingaccount.trading_enabled" if enabled else "tradingaccount.kill_switch"
    return _account_flag_set(
        account=account, flag="trading_enabled", enabled=enabled, action=action, actor=actor, reason=reason
    )


def account_set_auto_trade(*, account: TradingAccount, enabled: bool, actor: Actor, reason: str = "") -> bool:
    """Switch auto-trade on or off; returns False when it already was."""
    return _account_flag_set(
        account=account,
        flag="auto_trade",
        enabled=enabled,
        action="tradingaccount.auto_trade",
        actor=actor,
        reason=reason,
    )


def encryption_rotate_keys(*, actor: Actor) -> int:
    """Re-encrypt every stored secret under the newest FIELD_ENCRYPTION_KEYS key; returns rows rewritten.

    Run after prepending a new key; once it has run, older keys can be removed from the setting.
    """
    rewritten = 0
    with transaction.atomic():
        for model in apps.get_models():
            columns = [f.column for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not columns:
                continue
            table = connection.ops.quote_name(model._meta.db_table)
            pk = connection.ops.quote_name(model._meta.pk.column)
            with connection.cursor() as cursor:
                for column in columns:
                    quoted = connection.ops.quote_name(column)
                    # Raw SQL: the ORM would hand back decrypted values, and the token itself is rotated.
                    cursor.execute(f"SELECT {pk}, {quoted} FROM {table} WHERE {quoted} <> ''")  # noqa: S608
                    for row_pk, stored in cursor.fetchall():
                        cursor.execute(
                            f"UPDATE {table} SET {quoted} = %s WHERE {pk} = %s",  # noqa: S608
                            [rotate_value(stored), row_pk],
                        )
                        rewritten += 1
        audit_record(actor=actor, action="encryption.keys_rotated", after={"rows": rewritten})
    return rewritten
