"""Periodic jobs, run by `python manage.py rqcron portal.cron` (rq's cron scheduler)."""

from django.conf import settings
from rq import cron

from releases import dora, guards, reconcile

cron.register(reconcile.reconcile, "default", interval=settings.RECONCILE_INTERVAL_SECONDS, name="reconcile")
# Locks past their `until` are recorded as released, so Slack hears they lifted.
cron.register(guards.release_expired_locks, "default", interval=60, name="release-expired-locks")
# /metrics' DORA figures (30 days of production) computed here, so that no scrape reads the window.
cron.register(dora.refresh_exported, "default", interval=60, name="dora-figures")
