"""The periodic reconcile job is registered with rq's cron scheduler (`manage.py rqcron portal.cron`)."""

import importlib
import sys

from rq import cron

from releases import reconcile


def test_it_registers_reconcile_at_the_configured_interval(settings):
    settings.RECONCILE_INTERVAL_SECONDS = 17
    cron._job_data_registry.clear()
    sys.modules.pop("portal.cron", None)
    importlib.import_module("portal.cron")
    (entry,) = [job for job in cron._job_data_registry if job["func"] is reconcile.reconcile]
    assert entry["queue_name"] == "default"
    assert entry["interval"] == 17
