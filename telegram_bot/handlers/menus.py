"""The bot core's screens and commands: the main menu and its m:* navigation."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from telegram_bot import keyboards, texts
from telegram_bot.access import bot_user_of
from telegram_bot.db import db
from telegram_bot.replies import show
from telegram_bot.services import bot_accounts


async def command_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    accounts = await db(bot_accounts)()
    await show(update, texts.main_menu(bot_user_of(context), accounts), keyboards.main_menu())


async def callback_home(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.callback_query.answer()
    await command_start(update, context)


def register(application: Application) -> None:
    application.add_handler(CommandHandler("start", command_start))
    application.add_handler(CallbackQueryHandler(callback_home, pattern=r"^m:home$"))
