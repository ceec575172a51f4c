"""Prepare a fresh installation: the admin user, the default account, its session and the Telegram admins.

Safe to run at every start: it only creates what is missing and installs what the environment changed.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from telegram_bot.services import bot_session_ensure_default, telegram_users_bootstrap_admins
from trading.audit import Actor, audit_record
from trading.services import account_ensure_default


class Command(BaseCommand):
    help = "Create the admin user, the default trading account and the Telegram admins if missing."

    def handle(self, *args, **options):
        actor = Actor.system("bootstrap")
        self._ensure_admin_user(actor)
        result = account_ensure_default(actor=actor)
        account = result.account
        state = "created" if result.created else "present"
        self.stdout.write(f"Default trading account '{account.name}' {state} (mode {account.mode}).")
        for change in result.changes:
            self.stdout.write(f"  - {change}")
        if not account.webhook_secret_hash:
            self.stdout.write(
                self.style.WARNING(
                    "  The account has no webhook secret: set TRADINGVIEW_WEBHOOK_TOKEN or use the admin action "
                    "'Rotate webhook secret'. Alerts are refused until it has one."
                )
            )
        bot_session_ensure_default(name=settings.TRADING_DEFAULT_SESSION, account=account, actor=actor)
        added = telegram_users_bootstrap_admins(telegram_ids=settings.TELEGRAM_ADMIN_IDS, actor=actor)
        if added:
            self.stdout.write(f"Telegram admins added: {', '.join(str(u.telegram_id) for u in added)}.")

    def _ensure_admin_user(self, actor: Actor) -> None:
        username, password = settings.CONFIG["ADMIN_USERNAME"], settings.CONFIG["ADMIN_PASSWORD"]
        user_model = get_user_model()
        with transaction.atomic():
            user = user_model.objects.filter(username=username).first()
            if user is None:
                one_time = not password
                password = password or secrets.token_urlsafe(12)
                user = user_model.objects.create_superuser(
                    username=username, email=settings.CONFIG["ADMIN_EMAIL"], password=password
                )
                audit_record(actor=actor, action="user.created", instance=user, after={"username": username})
                if one_time:
                    self.stdout.write(
                        self.style.WARNING(
                            f"Admin user '{username}' created with the one-time password: {password}\n"
                            "  Change it after logging in (top right: 'Change password'), or set ADMIN_PASSWORD."
                        )
                    )
                else:
                    self.stdout.write(f"Admin user '{username}' created with the password from ADMIN_PASSWORD.")
            elif password and not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
                audit_record(actor=actor, action="user.password_set", instance=user, reason="ADMIN_PASSWORD changed")
                self.stdout.write(f"Admin user '{username}': password updated from ADMIN_PASSWORD.")
