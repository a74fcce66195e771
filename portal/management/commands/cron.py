import signal
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand
from django_rq.cron import DjangoCronScheduler

from plumbing import alive, election

LEASE = "pampam-cron"
CONFIG = "portal.cron"
# Without election the loop still wakes this often, so the liveness file stays fresh.
IDLE_WAKE_SECONDS = 30.0


class Command(BaseCommand):
    help = (
        f"Enqueue the periodic jobs of {CONFIG} (rq's cron scheduler, like `rqcron {CONFIG}`). With "
        f"LEADER_ELECTION on, replicas elect one through the Lease {LEASE!r}; only it enqueues."
    )

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        scheduler = DjangoCronScheduler()
        scheduler.load_config_from_file(CONFIG)
        if not settings.LEADER_ELECTION:
            self.stdout.write(f"Enqueuing {len(scheduler.get_jobs())} periodic jobs; Ctrl-C stops.")
            return run(scheduler, stop, lambda: True, IDLE_WAKE_SECONDS)
        campaign = election.campaign(LEASE, lambda: None, lambda: None)
        campaign.start()
        self.stdout.write(f"Cron campaigning for Lease {LEASE!r}; Ctrl-C stops.")
        try:
            run(scheduler, stop, campaign.elector.is_leader, campaign.elector.terms.retry)
        finally:
            campaign.stop()


def run(scheduler: DjangoCronScheduler, stop: threading.Event, may_act: Callable[[], bool], wake: float) -> None:
    """rq's CronScheduler loop, acting only while `may_act()` (the Lease's fence) holds and
    waking at least every `wake` seconds, so a new leader starts within a retry period."""
    scheduler.register_birth()
    try:
        while not stop.is_set():
            if may_act():
                if scheduler.enqueue_jobs():
                    scheduler.save()
                scheduler.heartbeat()
            alive.touch()
            stop.wait(min(scheduler.calculate_sleep_interval(), wake))
    finally:
        scheduler.register_death()
