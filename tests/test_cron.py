"""The periodic reconcile job is registered with rq's cron scheduler (`manage.py cron`, or
`rqcron portal.cron`); `manage.py cron` enqueues only while it holds the cron Lease."""

import importlib
import sys
import threading

import django_rq
from django_rq.cron import DjangoCronScheduler
from rq import cron

from plumbing import alive
from portal.management.commands import cron as cron_command
from releases import reconcile
from tests.support import wait_until


def test_it_registers_reconcile_at_the_configured_interval(settings):
    settings.RECONCILE_INTERVAL_SECONDS = 17
    cron._job_data_registry.clear()
    sys.modules.pop("portal.cron", None)
    importlib.import_module("portal.cron")
    (entry,) = [job for job in cron._job_data_registry if job["func"] is reconcile.reconcile]
    assert entry["queue_name"] == "default"
    assert entry["interval"] == 17


def _loop_in_background(may_act, alive_file, monkeypatch):
    """`manage.py cron`'s loop in a thread over a scheduler with reconcile every minute; returns
    a stop function that waits for a few more turns of the loop (seen on the liveness file) first."""
    monkeypatch.setenv(alive.ENV, str(alive_file))
    scheduler = DjangoCronScheduler()
    scheduler.register(reconcile.reconcile, "default", interval=60, name="reconcile")
    stop = threading.Event()
    thread = threading.Thread(target=cron_command.run, args=(scheduler, stop, may_act, 0.05), daemon=True)
    thread.start()

    def finish():
        for _ in range(3):
            seen = alive_file.stat().st_mtime_ns if alive_file.exists() else 0
            wait_until(lambda seen=seen: alive_file.exists() and alive_file.stat().st_mtime_ns != seen)
        stop.set()
        thread.join(10)

    return finish


def test_the_cron_loop_enqueues_nothing_while_another_replica_leads(tmp_path, monkeypatch):
    _loop_in_background(lambda: False, tmp_path / "alive", monkeypatch)()
    assert django_rq.get_queue("default").count == 0


def test_the_cron_loop_enqueues_its_jobs_while_it_leads(tmp_path, monkeypatch):
    _loop_in_background(lambda: True, tmp_path / "alive", monkeypatch)()
    queued = django_rq.get_queue("default").jobs
    assert [job.func_name for job in queued] == ["releases.reconcile.reconcile"]
