"""The bot core's screens and commands: main menu, Auto-Trade, Manual, Status, Reports, Help, the kill switch,
positions and closing one.

Handlers only parse, call a service through ``db`` and format. A button press is answered first (Telegram
stops the spinner and refuses late answers); a refused one is answered by ``deny`` with the reason instead.
"""

from __future__ import annotations

from html import escape

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from telegram_bot import keyboards, texts
from telegram_bot.access import actor_of, bot_user_of, can_admin, can_trade, deny
from telegram_bot.db import db
from telegram_bot.replies import show
from telegram_bot.services import (
    BotActionRefused,
    bot_accounts,
    bot_auto_trade_set,
    bot_auto_trade_set_named,
    bot_kill_switch_set,
    bot_position,
    bot_position_close,
    bot_positions_matching,
    bot_positions_open,
    bot_report,
    bot_signals_waiting,
    bot_status,
)

ADMINS_ONLY = "Only admins can change this."
TRADERS_ONLY = "Only traders and admins can close positions."
REPORT_PERIODS = {"d": "d", "day": "d", "today": "d", "w": "w", "week": "w", "weekly": "w", "daily": "d"}


async def answered(update: Update) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer()


# --- main menu --------------------------------------------------------------------------------------


async def command_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    accounts = await db(bot_accounts)()
    await show(update, texts.main_menu(bot_user_of(context), accounts), keyboards.main_menu())


# --- Auto-Trade and the kill switch -------------------------------------------------------------------


async def _show_auto_trade(update: Update, context: ContextTypes.DEFAULT_TYPE, note: str = "") -> None:
    editable = can_admin(bot_user_of(context))
    accounts = await db(bot_accounts)()
    text = texts.auto_trade(accounts, editable=editable)
    await show(update, f"{note}\n\n{text}" if note else text, keyboards.auto_trade(accounts, editable=editable))


async def callback_auto_trade(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    await _show_auto_trade(update, context)


async def callback_auto_trade_set(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = bot_user_of(context)
    if not can_admin(user):
        await deny(update, ADMINS_ONLY)
        return
    await answered(update)
    account_id, enabled = int(context.matches[0].group(1)), context.matches[0].group(2) == "1"
    try:
        await db(bot_auto_trade_set)(account_id=account_id, enabled=enabled, actor=actor_of(user))
    except BotActionRefused as refused:
        await _show_auto_trade(update, context, note=f"⚠️ {refused}")
        return
    await _show_auto_trade(update, context)


async def command_auto(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = bot_user_of(context)
    if not can_admin(user):
        await deny(update, ADMINS_ONLY)
        return
    args = context.args or []
    if not args or args[0].lower() not in ("on", "off") or len(args) > 2:
        await show(update, "Usage: /auto on|off [ACCOUNT] (without ACCOUNT: every active account)")
        return
    enabled = args[0].lower() == "on"
    try:
        names = await db(bot_auto_trade_set_named)(
            enabled=enabled, actor=actor_of(user), account_name=args[1] if len(args) > 1 else ""
        )
    except BotActionRefused as refused:
        await show(update, f"⚠️ {escape(str(refused))}")
        return
    state = "ON" if enabled else "OFF"
    note = texts.changed(f"Auto-trade {state}", names, unchanged_note=f"Auto-trade was already {state}.")
    await _show_auto_trade(update, context, note=note)


async def _kill_switch(update: Update, context: ContextTypes.DEFAULT_TYPE, *, stopped: bool) -> None:
    user = bot_user_of(context)
    if not can_admin(user):
        await deny(update, ADMINS_ONLY)
        return
    await answered(update)
    names = await db(bot_kill_switch_set)(stopped=stopped, actor=actor_of(user))
    if stopped:
        note = texts.changed(
            "⛔ Kill switch ON: no new entries (exits still allowed) on",
            names,
            unchanged_note="The kill switch was already on.",
        )
    else:
        note = texts.changed("▶️ Trading resumed on", names, unchanged_note="Trading was already running.")
    await _show_auto_trade(update, context, note=note)


async def command_botstop(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _kill_switch(update, context, stopped=True)


async def command_botstart(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _kill_switch(update, context, stopped=False)


async def callback_kill_switch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _kill_switch(update, context, stopped=context.matches[0].group(1) == "1")


# --- Manual -----------------------------------------------------------------------------------------


async def callback_manual(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    signals = await db(bot_signals_waiting)()
    await show(update, texts.waiting_signals(signals), keyboards.waiting_signals(signals))


# --- Status -----------------------------------------------------------------------------------------


async def command_status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    view = await db(bot_status)()
    await show(update, texts.status(view), keyboards.status())


# --- Reports ----------------------------------------------------------------------------------------


async def _show_report(update: Update, period: str) -> None:
    report = await db(bot_report)(period=period)
    await show(update, texts.report(report), keyboards.report(period))


async def command_report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    args = context.args or []
    period = REPORT_PERIODS.get(args[0].lower()) if args else "d"
    if period is None or len(args) > 1:
        await show(update, "Usage: /report [day|week]")
        return
    await _show_report(update, period)


async def callback_report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    await _show_report(update, context.matches[0].group(1))


async def callback_reports(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    await _show_report(update, "d")


# --- Help -------------------------------------------------------------------------------------------


async def command_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    await show(update, texts.help_text(texts.COMMANDS), keyboards.back_home())


# --- positions and closing ----------------------------------------------------------------------------


async def command_positions(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    allowed = can_trade(bot_user_of(context))
    items = await db(bot_positions_open)()
    await show(update, texts.positions(items, can_close=allowed), keyboards.positions(items, can_close=allowed))


async def command_close(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not can_trade(bot_user_of(context)):
        await deny(update, TRADERS_ONLY)
        return
    if len(context.args or []) != 1:
        await show(update, "Usage: /close SYMBOL, for example /close BTCUSDT")
        return
    try:
        items = await db(bot_positions_matching)(symbol=context.args[0])
    except BotActionRefused as refused:
        await show(update, escape(str(refused)))
        return
    if not items:
        await show(update, f"No open position on {escape(context.args[0])}.")
    elif len(items) == 1:
        await show(update, texts.close_confirm(items[0]), keyboards.close_confirm(items[0].pk))
    else:
        await show(update, texts.positions(items, can_close=True), keyboards.positions(items, can_close=True))


async def callback_close_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not can_trade(bot_user_of(context)):
        await deny(update, TRADERS_ONLY)
        return
    await answered(update)
    position = await db(bot_position)(position_id=int(context.matches[0].group(1)))
    if position is None:
        await show(update, "That position is already closed.", keyboards.back_home())
        return
    await show(update, texts.close_confirm(position), keyboards.close_confirm(position.pk))


async def callback_close_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = bot_user_of(context)
    if not can_trade(user):
        await deny(update, TRADERS_ONLY)
        return
    await update.callback_query.answer("Closing…")
    position_id = int(context.matches[0].group(1))
    position = await db(bot_position)(position_id=position_id)
    if position is None:
        await show(update, "That position is already closed.", keyboards.back_home())
        return
    try:
        summary = await db(bot_position_close)(position_id=position_id, actor=actor_of(user))
    except BotActionRefused as refused:
        await show(update, f"⚠️ {escape(str(refused))}", keyboards.back_home())
        return
    await show(update, texts.close_done(position, summary), keyboards.back_home())


async def callback_close_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answered(update)
    await show(update, "Cancelled: nothing was closed.", keyboards.back_home())


def register(application: Application) -> None:
    commands = {
        "start": command_start,
        "status": command_status,
        "report": command_report,
        "help": command_help,
        "auto": command_auto,
        "botstop": command_botstop,
        "botstart": command_botstart,
        "positions": command_positions,
        "close": command_close,
    }
    for name, callback in commands.items():
        application.add_handler(CommandHandler(name, callback))
    buttons = {
        r"^m:home$": command_start,
        r"^m:auto$": callback_auto_trade,
        r"^m:man$": callback_manual,
        r"^m:st$": command_status,
        r"^st:r$": command_status,
        r"^m:rep$": callback_reports,
        r"^rep:([dw])$": callback_report,
        r"^m:help$": command_help,
        r"^at:(\d+):([01])$": callback_auto_trade_set,
        r"^ks:([01])$": callback_kill_switch,
        r"^cl:(\d+)$": callback_close_ask,
        r"^cl:ok:(\d+)$": callback_close_confirm,
        r"^cl:x$": callback_close_cancel,
    }
    for pattern, callback in buttons.items():
        application.add_handler(CallbackQueryHandler(callback, pattern=pattern))
