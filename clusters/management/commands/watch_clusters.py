import signal

from django.core.management.base import BaseCommand

from clusters.watcher import Watcher


class Command(BaseCommand):
    help = "Watch Deployments, ReplicaSets and Pods of every environment's namespace."

    def add_arguments(self, parser):
        parser.add_argument("--name", default="watcher", help="Heartbeat name of this watcher.")

    def handle(self, *args, name, **options):
        watcher = Watcher(name=name)
        signal.signal(signal.SIGTERM, lambda *_: watcher.stop.set())
        self.stdout.write(f"Watching clusters as {name!r}; Ctrl-C stops.")
        try:
            watcher.run()
        except KeyboardInterrupt:
            watcher.stop.set()
