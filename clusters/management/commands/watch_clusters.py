import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from clusters.watcher import Watcher
from plumbing import election, memory

LEASE = "pampam-watcher"


class Command(BaseCommand):
    help = (
        "Watch Deployments, ReplicaSets and Pods of every environment's namespace. With LEADER_ELECTION on, "
        f"replicas elect one through the Lease {LEASE!r}; the others stand by."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", default="watcher", help="Heartbeat name of this watcher.")

    def handle(self, *args, name, **options):
        memory.freeze_what_start_up_made()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if settings.LEADER_ELECTION:
            return self.campaign(name, stop)
        watcher = Watcher(name=name).start()
        self.stdout.write(f"Watching clusters as {name!r}; Ctrl-C stops.")
        stop.wait()
        watcher.shutdown()

    def campaign(self, name: str, stop: threading.Event) -> None:
        """Watch only while holding the Lease; every term gets a fresh Watcher fenced by it."""
        terms: list[Watcher] = []
        campaign = None

        def lead():
            terms.append(Watcher(name=name, fence=campaign.elector.is_leader).start())

        def step_down():
            if terms:
                terms.pop().shutdown()

        campaign = election.campaign(LEASE, lead, step_down)
        campaign.start()
        self.stdout.write(f"Watcher {name!r} campaigning for Lease {LEASE!r}; Ctrl-C stops.")
        stop.wait()
        campaign.stop()
