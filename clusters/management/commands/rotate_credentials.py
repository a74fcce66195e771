from django.core.management.base import BaseCommand, CommandError

from clusters.models import Cluster, Environment
from plumbing import crypto

# Every credential stored encrypted: (model, field).
ENCRYPTED = ((Cluster, "token_encrypted"), (Environment, "slack_webhook_encrypted"))


def rotate_all() -> int:
    """Re-encrypt every stored credential with the newest CREDENTIALS_KEY; returns how many.

    Each row is swapped only if it still holds what was read, so an admin saving a new token at the
    same moment wins (their value is already encrypted with the newest key)."""
    rotated = 0
    for model, field in ENCRYPTED:
        for pk, old in model.objects.exclude(**{field: ""}).values_list("pk", field):
            new = crypto.rotate(old)
            rotated += model.objects.filter(pk=pk, **{field: old}).update(**{field: new})
    return rotated


class Command(BaseCommand):
    help = (
        "Re-encrypt stored credentials (cluster tokens, Slack webhooks) with the first key of "
        "CREDENTIALS_KEY; the older keys listed after it may be removed afterwards."
    )

    def handle(self, *args, **options):
        try:
            count = rotate_all()
        except crypto.CredentialError as error:
            raise CommandError(f"{error} Nothing after the failing credential was rotated; fix the keys and rerun.")
        self.stdout.write(f"Re-encrypted {count} credential(s) with the newest key.")
