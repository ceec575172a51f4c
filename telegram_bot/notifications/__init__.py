"""Notifications: the outbox, the fan-out from platform events and the rate-limited sender.

How nothing is lost
- Every change worth telling is already written with an AuditEvent in its own transaction (status
  transitions, exchange health), and warnings nobody else recorded get one where they are raised
  (``signals_app.events.alert_record``). ``fanout.notifications_fanout`` reads the audit trail behind a
  cursor and writes the outbox rows (``Notification``) in the same transaction as the cursor's move: a
  crash either keeps both or neither. A rolled-back change has no audit row, so it notifies nobody.
- Audit ids are handed out before commit, so a transaction may commit a lower id after a higher one was
  read. The cursor remembers the ids it skipped and looks for them again for ``GAP_WINDOW`` (then they are
  taken for rolled back). UniqueConstraint(telegram_user, dedupe_key) makes any re-read harmless.
- Another writer may insert outbox rows itself, in its own transaction (``outbox.notification_enqueue``).

How nothing is sent twice (and the one case where it may be)
- The sender (``sender.py``, in the bot process only: one sender, so its in-memory rate limits are the
  whole truth) claims rows under a row lock (``skip_locked``) and marks them ``sending`` (committed)
  before calling Telegram, ``sent`` with the message id after. A second bot process overlapping the first
  (a deploy) claims other rows, never the same one, and leaves a row ``sending`` alone for SENDING_LEASE.
- A crash, or a timed-out request, between Telegram's send and our ``sent`` leaves a row whose delivery is
  unknown; the Bot API has no idempotency key to ask. We choose at-least-once: the row is sent again
  after ``SENDING_LEASE`` (2 min) with a first line saying it may be a repeat.
  A missed "stop loss hit" or "circuit breaker open" costs more than a visible repeat, and a repeated
  approval card is harmless (its buttons act on the signal's current status, the newest copy is the one
  recorded in SignalCard).
- 429: the row goes back to pending at ``retry_after``; 403 and 400: failed with Telegram's reason (the
  admin's "retry now" re-queues it); network errors and 5xx: retried with backoff (a timeout may have
  been delivered: at-least-once again, and the retry says it may be a repeat). A row waiting for its
  retry holds back the later rows of its chat, so a chat reads its notifications in the order they
  happened.
- A long text goes in parts; the parts Telegram took are not sent again after a failure.
- Rows of one chat waiting together are sent as one message (a burst of fills, an SL and TPs placed):
  fewer messages under the 1/s per-chat limit. A card (buttons) always goes alone.
- A row whose user was deactivated after it was queued is not sent ("failed: recipient deactivated").
"""
