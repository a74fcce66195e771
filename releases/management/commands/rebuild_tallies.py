from django.core.management.base import BaseCommand

from plumbing import fragments
from releases import tallies
from releases.models import Approval, Build, Deployment


class Command(BaseCommand):
    help = (
        "Recompute the figures /metrics serves (deployments by state, rollout, approval and build durations) "
        "from history: after rows were written around the models (COPY, bulk_create, raw SQL)."
    )

    def handle(self, *args, **options):
        count = tallies.rebuild(Deployment, Approval, Build)
        fragments.touch(fragments.DEPLOYMENT, fragments.BUILD)  # /metrics' kept text counted the old rows
        if options["verbosity"]:
            self.stdout.write(f"{count} series recomputed from history.")
