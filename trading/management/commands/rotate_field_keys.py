from django.core.management.base import BaseCommand

from trading.audit import Actor
from trading.services import encryption_rotate_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS. "
        "Afterwards the older keys can be removed from the setting."
    )

    def handle(self, *args, **options):
        rows = encryption_rotate_keys(actor=Actor.system("rotate_field_keys"))
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rows} stored secret(s) with the newest key."))
