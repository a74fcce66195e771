import time

from django.conf import settings
from django.core.management.base import BaseCommand

from releases.reconcile import reconcile


class Command(BaseCommand):
    help = "Re-read active deployments and advance them (what the periodic job does)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Repeat every RECONCILE_INTERVAL_SECONDS.")

    def handle(self, *args, loop, **options):
        while True:
            counts = reconcile()
            self.stdout.write(f"reconciled: {counts}")
            if not loop:
                return
            time.sleep(settings.RECONCILE_INTERVAL_SECONDS)
