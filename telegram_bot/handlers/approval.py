"""The approval card's buttons (``sig:*``) and the typed edits of a waiting signal.

Thin: parse the button or the text, call ``telegram_bot.approval``, show the result on every card of the
signal. An edit is a per-user pending state (``user_data[PENDING_EDIT]``): the Edit button asks for the
value, the next text message from that user is the value, ``/cancel`` or the Cancel button drops it, and
it times out after ``EDIT_TIMEOUT_SECONDS``. The text handler runs in its own group (``EDIT_TEXT_GROUP``) so
that it never competes with the leverage dialog's or the menus' handlers in group 0; it acts only when an
edit is pending. A job (``CARD_REFRESH_SECONDS``) takes the buttons off cards whose signal expired or was
handled elsewhere.
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from telegram_bot import approval
from telegram_bot.access import bot_user_of, can_trade, deny
from telegram_bot.callbacks import cb
from telegram_bot.cards import CardView
from telegram_bot.db import db

logger = logging.getLogger(__name__)

PENDING_EDIT = "signal_edit"
CARDS_SHOWN = "signal_cards_shown"
EDIT_TEXT_GROUP = 1
EDIT_TIMEOUT_SECONDS = 120
CARD_REFRESH_SECONDS = 5
NOT_ALLOWED = "Not allowed: only traders and admins may approve, reject or edit signals."
CANCEL_MARKUP = InlineKeyboardMarkup([[InlineKeyboardButton("Cancel", callback_data=cb("sig", "x"))]])


def register(application: Application) -> None:
    application.add_handler(CallbackQueryHandler(callback_approve, pattern=r"^sig:ok:(\d+)$"))
    application.add_handler(CallbackQueryHandler(callback_reject, pattern=r"^sig:no:(\d+)$"))
    application.add_handler(CallbackQueryHandler(callback_edit_start, pattern=r"^sig:ed:(q|sl|tp|lev):(\d+)$"))
    application.add_handler(CallbackQueryHandler(callback_edit_cancel, pattern=r"^sig:x$"))
    application.add_handler(CallbackQueryHandler(callback_view, pattern=r"^sig:v:(\d+)$"))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, message_edit_value), group=EDIT_TEXT_GROUP)
    application.add_handler(CommandHandler("cancel", command_cancel), group=EDIT_TEXT_GROUP)
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            job_cards_refresh, interval=CARD_REFRESH_SECONDS, first=CARD_REFRESH_SECONDS, name="signal-cards-refresh"
        )


# --- showing cards -------------------------------------------------------------------------------


def markup_of(view: CardView) -> InlineKeyboardMarkup | None:
    if not view.keyboard:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b["text"], callback_data=b["callback_data"]) for b in row] for row in view.keyboard]
    )


async def cards_show(
    bot, update: approval.CardUpdate, *, also: tuple[int, int] | None = None, shown: dict | None = None
) -> None:
    """Edit every open card of the signal (and ``also``, the (chat, message) pressed) to ``update.view``;
    the cards shown final are closed. ``shown`` (card pk -> text last shown) skips cards already showing
    the text: the refresh job sees a signal that stays executing on every run."""
    targets = list(update.targets)
    if also is not None and all((t.chat_id, t.message_id) != also for t in targets):
        targets.append(approval.CardTarget(None, *also))
    done = []
    for target in targets:
        if shown is not None and not update.final and shown.get(target.card_pk) == update.view.text:
            continue
        try:
            await bot.edit_message_text(
                update.view.text,
                chat_id=target.chat_id,
                message_id=target.message_id,
                reply_markup=markup_of(update.view),
            )
        except BadRequest as error:
            text = str(error).lower()
            if "not modified" not in text and "not found" not in text and "can't be edited" not in text:
                logger.warning("card of signal %s in chat %s not updated: %s", update.signal_id, target.chat_id, error)
                continue
        except TelegramError as error:  # network, 429, a blocked bot: the refresh job tries again
            logger.warning("card of signal %s in chat %s not updated: %s", update.signal_id, target.chat_id, error)
            continue
        if target.card_pk is not None:
            done.append(target.card_pk)
            if shown is not None:
                shown[target.card_pk] = update.view.text
    await db(approval.signal_cards_edited)(card_pks=done, final=update.final)


def _pressed(update: Update) -> tuple[int, int] | None:
    message = update.callback_query.message if update.callback_query else None
    return (message.chat.id, message.message_id) if message is not None else None


async def _allowed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    if can_trade(bot_user_of(context)):
        return True
    await deny(update, NOT_ALLOWED)
    return False


# --- buttons -------------------------------------------------------------------------------------


async def callback_approve(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _decide(update, context, approval.signal_card_approve)


async def callback_reject(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _decide(update, context, approval.signal_card_reject)


async def _decide(update: Update, context: ContextTypes.DEFAULT_TYPE, service) -> None:
    if not await _allowed(update, context):
        return
    query = update.callback_query
    signal_id = int(context.matches[0].group(1))
    try:
        result = await db(service)(signal_id=signal_id, bot_user=bot_user_of(context))
    except approval.EditInvalid as error:
        await query.answer(str(error), show_alert=True)
        return
    await answer_safely(query, result.answer, alert=result.alert)
    await cards_show(context.bot, result, also=_pressed(update))
    _edit_drop(context, signal_id=signal_id)


async def answer_safely(query, text: str, *, alert: bool) -> None:
    """Answer a button press; after a slow exchange Telegram may call the press too old, and the card,
    edited next, still shows the outcome."""
    try:
        await query.answer(text[:200], show_alert=alert)
    except BadRequest as error:
        logger.warning("button press not answered: %s", error)


async def callback_view(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the signal's card again as a new message (from the Manual list), and remember it."""
    query = update.callback_query
    signal_id = int(context.matches[0].group(1))
    try:
        result = await db(approval.signal_card_get)(signal_id=signal_id)
    except approval.EditInvalid as error:
        await query.answer(str(error), show_alert=True)
        return
    await query.answer()
    sent = await context.bot.send_message(
        update.effective_chat.id, result.view.text, reply_markup=markup_of(result.view)
    )
    await db(approval.signal_card_shown)(
        signal_id=signal_id, bot_user=bot_user_of(context), chat_id=sent.chat.id, message_id=sent.message_id
    )


async def callback_edit_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await _allowed(update, context):
        return
    query = update.callback_query
    field_code, signal_id = context.matches[0].group(1), int(context.matches[0].group(2))
    try:
        result = await db(approval.signal_card_get)(signal_id=signal_id)
    except approval.EditInvalid as error:
        await query.answer(str(error), show_alert=True)
        return
    if result.final or not result.view.keyboard:
        await query.answer("Already handled: it can no longer be edited.", show_alert=True)
        await cards_show(context.bot, result, also=_pressed(update))
        return
    await query.answer()
    _edit_drop(context)
    chat_id = update.effective_chat.id
    job_name = f"signal-edit-{update.effective_user.id}"
    context.user_data[PENDING_EDIT] = {
        "signal_id": signal_id,
        "field": field_code,
        "card": _pressed(update),
        "job": job_name,
    }
    if context.job_queue is not None:
        context.job_queue.run_once(
            job_edit_timeout,
            EDIT_TIMEOUT_SECONDS,
            data={"signal_id": signal_id},
            chat_id=chat_id,
            user_id=update.effective_user.id,
            name=job_name,
        )
    await context.bot.send_message(
        chat_id,
        f"Signal #{signal_id}: {approval.EDIT_PROMPTS[field_code]}\n/cancel to keep it as it is.",
        reply_markup=CANCEL_MARKUP,
        parse_mode=None,
    )


async def callback_edit_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    pending = _edit_drop(context)
    await query.answer()
    text = f"Edit of signal #{pending['signal_id']} cancelled; nothing changed." if pending else "Nothing to cancel."
    await query.edit_message_text(text, parse_mode=None)


async def command_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    pending = _edit_drop(context)
    if pending:
        await update.effective_message.reply_text(
            f"Edit of signal #{pending['signal_id']} cancelled; nothing changed.", parse_mode=None
        )


# --- the typed value -----------------------------------------------------------------------------


async def message_edit_value(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    pending = context.user_data.get(PENDING_EDIT) if context.user_data is not None else None
    if not pending:
        return
    if not can_trade(bot_user_of(context)):  # demoted since the edit started
        _edit_drop(context)
        await deny(update, NOT_ALLOWED)
        return
    message = update.effective_message
    try:
        result = await db(approval.signal_card_edit)(
            signal_id=pending["signal_id"],
            field_code=pending["field"],
            text=message.text,
            bot_user=bot_user_of(context),
        )
    except approval.EditInvalid as error:  # nothing changed; the edit stays open for another try
        await message.reply_text(f"{error}\nType another value, or /cancel.", parse_mode=None)
        return
    _edit_drop(context)
    await message.reply_text(result.answer, parse_mode=None)
    card = tuple(pending["card"]) if pending.get("card") else None
    await cards_show(context.bot, result, also=card)


def _edit_drop(context: ContextTypes.DEFAULT_TYPE, *, signal_id: int | None = None) -> dict | None:
    """Forget the caller's pending edit (only one of ``signal_id`` when given) and its timeout."""
    if context.user_data is None:
        return None
    pending = context.user_data.get(PENDING_EDIT)
    if not pending or (signal_id is not None and pending["signal_id"] != signal_id):
        return None
    context.user_data.pop(PENDING_EDIT, None)
    if context.job_queue is not None and pending.get("job"):
        for job in context.job_queue.get_jobs_by_name(pending["job"]):
            job.schedule_removal()
    return pending


async def job_edit_timeout(context: ContextTypes.DEFAULT_TYPE) -> None:
    job = context.job
    pending = context.user_data.get(PENDING_EDIT) if context.user_data is not None else None
    if not pending or pending["signal_id"] != job.data["signal_id"]:
        return
    context.user_data.pop(PENDING_EDIT, None)
    await context.bot.send_message(
        job.chat_id,
        f"The edit of signal #{pending['signal_id']} timed out after {EDIT_TIMEOUT_SECONDS} s; nothing changed.",
        parse_mode=None,
    )


# --- expiry and changes made elsewhere -----------------------------------------------------------


async def job_cards_refresh(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Cards still showing buttons for a signal that expired or was handled elsewhere lose them."""
    try:
        updates = await db(approval.signal_cards_refresh_due)()
    except Exception:  # a database hiccup must not kill the repeating job
        logger.exception("signal cards refresh failed")
        return
    shown = context.bot_data.setdefault(CARDS_SHOWN, {})
    for update in updates:
        await cards_show(context.bot, update, shown=shown)
        if update.final:
            for target in update.targets:
                shown.pop(target.card_pk, None)
