"""The Margin & Leverage dialog (admins only), a ConversationHandler named "leverage".

``lev:go`` → account (skipped when there is one) → symbol (paged whitelisted symbols, or a typed name) →
spot or futures → isolated or cross → leverage (typed, the allowed range shown) → confirm → BingX, then the
profile (``telegram_bot.leverage.leverage_apply``) → the state BingX reports. Every step has a Cancel
button (``lev:x``, also ``/cancel``) and the dialog ends after ``TIMEOUT_SECONDS`` without input, saying so.
The dialog's choices live in ``user_data[DIALOG]``; nothing is stored before the confirmation.
"""

from __future__ import annotations

import warnings

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from telegram_bot import leverage as service
from telegram_bot.access import bot_user_of, can_admin, deny
from telegram_bot.callbacks import cb
from telegram_bot.db import db
from telegram_bot.handlers.approval import PENDING_EDIT

DIALOG = "leverage_dialog"
TIMEOUT_SECONDS = 300
ACCOUNT, SYMBOL, MARKET, MARGIN, LEVERAGE, CONFIRM = range(6)
NOT_ALLOWED = "Not allowed: only admins change margin and leverage."
CANCEL = InlineKeyboardButton("Cancel", callback_data=cb("lev", "x"))
MARGIN_MODES = {"iso": "isolated", "cross": "cross"}
ENDED = "This Margin & Leverage dialog has ended; open it again from the menu."
SPOT_REFUSED = "Spot has no margin mode or leverage; TVBingX trades perpetual futures only."


def register(application: Application) -> None:
    text = filters.TEXT & ~filters.COMMAND
    with warnings.catch_warnings():
        # Buttons are tracked per chat and user, not per message, on purpose: the dialog mixes buttons and
        # typed text (python-telegram-bot warns about exactly this combination).
        warnings.filterwarnings("ignore", message="If 'per_message=False'", category=PTBUserWarning)
        conversation = ConversationHandler(
            name="leverage",
            entry_points=[CallbackQueryHandler(callback_start, pattern=r"^lev:go$")],
            states={
                ACCOUNT: [CallbackQueryHandler(callback_account, pattern=r"^lev:acc:(\d+)$")],
                SYMBOL: [
                    CallbackQueryHandler(callback_symbol, pattern=r"^lev:sym:([A-Za-z0-9:/._\-]+)$"),
                    CallbackQueryHandler(callback_page, pattern=r"^lev:pg:(\d+)$"),
                    MessageHandler(text, message_symbol),
                ],
                MARKET: [CallbackQueryHandler(callback_market, pattern=r"^lev:mt:(spot|fut)$")],
                MARGIN: [CallbackQueryHandler(callback_margin, pattern=r"^lev:mm:(iso|cross)$")],
                LEVERAGE: [MessageHandler(text, message_leverage)],
                CONFIRM: [CallbackQueryHandler(callback_confirm, pattern=r"^lev:ok$")],
                ConversationHandler.TIMEOUT: [TypeHandler(Update, timeout_report)],
            },
            fallbacks=[
                CallbackQueryHandler(callback_cancel, pattern=r"^lev:x$"),
                CommandHandler("cancel", command_cancel),
            ],
            per_chat=True,
            per_user=True,
            per_message=False,
            allow_reentry=True,
            conversation_timeout=TIMEOUT_SECONDS,
        )
    application.add_handler(conversation)
    # After the conversation (its own handlers come first): a button of a finished or expired dialog.
    application.add_handler(CallbackQueryHandler(callback_ended, pattern=r"^lev:"))


def _markup(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([*rows, [CANCEL]])


async def _show(update: Update, text: str, rows: list[list[InlineKeyboardButton]] | None = None) -> None:
    """Answer a button by editing its message; answer text by a new message."""
    markup = _markup(rows or [])
    if update.callback_query is not None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text(text, reply_markup=markup, parse_mode=None)
    else:
        await update.effective_message.reply_text(text, reply_markup=markup, parse_mode=None)


def _dialog(context: ContextTypes.DEFAULT_TYPE) -> dict:
    return context.user_data.setdefault(DIALOG, {})


def _superseded(context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A signal edit started after this dialog: the typed text is the edit's (handled in its own group)."""
    return bool(context.user_data.get(PENDING_EDIT))


# --- steps ---------------------------------------------------------------------------------------


async def callback_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    if not can_admin(bot_user_of(context)):
        await deny(update, NOT_ALLOWED)
        return ConversationHandler.END
    context.user_data.pop(PENDING_EDIT, None)  # one dialog at a time: a half-typed signal edit is dropped
    context.user_data[DIALOG] = {}
    accounts = await db(service.leverage_accounts)()
    if not accounts:
        await _show(update, "There is no active trading account.")
        return ConversationHandler.END
    if len(accounts) == 1:
        _dialog(context).update(account_id=accounts[0].pk, account_name=accounts[0].name)
        return await _symbols(update, context, page=0)
    rows = [[InlineKeyboardButton(f"{a.name} ({a.mode})", callback_data=cb("lev", "acc", a.pk))] for a in accounts]
    await _show(update, "Margin & Leverage\nWhich account?", rows)
    return ACCOUNT


async def callback_account(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    account_id = int(context.matches[0].group(1))
    accounts = {a.pk: a for a in await db(service.leverage_accounts)()}
    if account_id not in accounts:
        await update.callback_query.answer("That account is no longer active.", show_alert=True)
        return ACCOUNT
    _dialog(context).update(account_id=account_id, account_name=accounts[account_id].name)
    return await _symbols(update, context, page=0)


async def _symbols(update: Update, context: ContextTypes.DEFAULT_TYPE, *, page: int) -> int:
    dialog = _dialog(context)
    listing = await db(service.leverage_symbols)(account_id=dialog["account_id"], page=page)
    rows = [[InlineKeyboardButton(symbol, callback_data=cb("lev", "sym", symbol))] for symbol in listing.symbols]
    paging = []
    if listing.page > 0:
        paging.append(InlineKeyboardButton("« Previous", callback_data=cb("lev", "pg", listing.page - 1)))
    if listing.page + 1 < listing.pages:
        paging.append(InlineKeyboardButton("Next »", callback_data=cb("lev", "pg", listing.page + 1)))
    if paging:
        rows.append(paging)
    header = f"Margin & Leverage · {dialog['account_name']}\n"
    if listing.symbols:
        body = f"Pick a whitelisted symbol (page {listing.page + 1}/{listing.pages}), or type its name."
    else:
        body = "No symbol is whitelisted for this account; type a name, or whitelist one in the admin."
    await _show(update, header + body, rows)
    return SYMBOL


async def callback_page(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    return await _symbols(update, context, page=int(context.matches[0].group(1)))


async def callback_symbol(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    return await _symbol_chosen(update, context, context.matches[0].group(1))


async def message_symbol(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    if _superseded(context):
        return ConversationHandler.END
    return await _symbol_chosen(update, context, update.effective_message.text)


async def _symbol_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> int:
    dialog = _dialog(context)
    try:
        symbol = await db(service.leverage_symbol_resolve)(account_id=dialog["account_id"], text=text)
    except service.LeverageInvalid as error:
        if update.callback_query is not None:
            await update.callback_query.answer(str(error)[:200], show_alert=True)
        else:
            await update.effective_message.reply_text(f"{error}\nType another name, or Cancel.", parse_mode=None)
        return SYMBOL
    dialog["symbol"] = symbol
    rows = [
        [
            InlineKeyboardButton("Spot", callback_data=cb("lev", "mt", "spot")),
            InlineKeyboardButton("Futures (perpetual)", callback_data=cb("lev", "mt", "fut")),
        ]
    ]
    await _show(update, f"{symbol} on {dialog['account_name']}\nSpot or futures?", rows)
    return MARKET


async def callback_market(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    if context.matches[0].group(1) == "spot":
        # BingX spot has neither margin mode nor leverage, and TVBingX trades USDT-M perpetuals only.
        await query.answer(
            "Spot has no margin mode or leverage; TVBingX trades perpetual futures only.", show_alert=True
        )
        return MARKET
    dialog = _dialog(context)
    try:
        allowed = await db(service.leverage_range)(account_id=dialog["account_id"], symbol=dialog["symbol"])
    except service.LeverageInvalid as error:
        await query.answer(str(error)[:200], show_alert=True)
        return MARKET
    rows = [
        [
            InlineKeyboardButton("Isolated", callback_data=cb("lev", "mm", "iso")),
            InlineKeyboardButton("Cross", callback_data=cb("lev", "mm", "cross")),
        ]
    ]
    text = f"{dialog['symbol']} futures · now {allowed.margin_mode}, {allowed.leverage}x\nIsolated or cross margin?"
    await _show(update, text, rows)
    return MARGIN


async def callback_margin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    dialog = _dialog(context)
    dialog["margin_mode"] = MARGIN_MODES[context.matches[0].group(1)]
    try:
        allowed = await db(service.leverage_range)(account_id=dialog["account_id"], symbol=dialog["symbol"])
    except service.LeverageInvalid as error:
        await update.callback_query.answer(str(error)[:200], show_alert=True)
        return MARGIN
    await _show(
        update,
        f"{dialog['symbol']} · {dialog['margin_mode']}\nType the leverage: a whole number from {allowed.describe()}.",
    )
    return LEVERAGE


async def message_leverage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    if _superseded(context):
        return ConversationHandler.END
    dialog = _dialog(context)
    message = update.effective_message
    try:
        allowed = await db(service.leverage_range)(account_id=dialog["account_id"], symbol=dialog["symbol"])
        dialog["leverage"] = service.parse_leverage(message.text, allowed)
    except service.LeverageInvalid as error:
        await message.reply_text(f"{error}\nType another value, or Cancel.", parse_mode=None)
        return LEVERAGE
    rows = [[InlineKeyboardButton("Confirm", callback_data=cb("lev", "ok"))]]
    text = (
        f"Set {dialog['symbol']} on {dialog['account_name']} to {dialog['margin_mode']}, {dialog['leverage']}x?\n"
        f"(now {allowed.margin_mode}, {allowed.leverage}x)"
    )
    await _show(update, text, rows)
    return CONFIRM


async def callback_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    query = update.callback_query
    if not can_admin(bot_user_of(context)):  # demoted while the dialog was open
        await deny(update, NOT_ALLOWED)
        return ConversationHandler.END
    dialog = context.user_data.pop(DIALOG, {})
    await query.answer()
    await query.edit_message_text(f"Setting {dialog['symbol']} on BingX…", parse_mode=None)
    try:
        outcome = await db(service.leverage_apply)(
            account_id=dialog["account_id"],
            symbol=dialog["symbol"],
            margin_mode=dialog["margin_mode"],
            leverage=dialog["leverage"],
            bot_user=bot_user_of(context),
        )
        text = outcome.text
    except service.LeverageInvalid as error:
        text = f"Not changed: {error}"
    await query.edit_message_text(text, parse_mode=None)
    return ConversationHandler.END


# --- leaving -------------------------------------------------------------------------------------


async def callback_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data.pop(DIALOG, None)
    await update.callback_query.answer()
    await update.callback_query.edit_message_text("Margin & Leverage cancelled; nothing changed.", parse_mode=None)
    return ConversationHandler.END


async def command_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data.pop(DIALOG, None)
    await update.effective_message.reply_text("Margin & Leverage cancelled; nothing changed.", parse_mode=None)
    return ConversationHandler.END


async def callback_ended(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.callback_query.answer(ENDED, show_alert=True)


async def timeout_report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    context.user_data.pop(DIALOG, None)
    if update.effective_chat is not None:
        await context.bot.send_message(
            update.effective_chat.id,
            f"Margin & Leverage expired after {TIMEOUT_SECONDS} s without an answer; nothing changed.",
            parse_mode=None,
        )
