"""Periodic jobs, run by `python manage.py rqcron portal.cron` (rq's cron scheduler)."""

from django.conf import settings
from rq import cron

from releases import jobs

cron.register(jobs.reconcile, "default", interval=settings.RECONCILE_INTERVAL_SECONDS, name="reconcile")
