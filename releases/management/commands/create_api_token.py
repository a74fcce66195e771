from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from releases.api.models import SCOPE_NAMES, ApiToken


class Command(BaseCommand):
    help = "Make an API token for USERNAME (a person or a service account) and print only the token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            help=f"One of {', '.join(SCOPE_NAMES)}; repeat it or separate with commas.",
        )
        parser.add_argument("--expires", type=int, metavar="DAYS", help="Days until it expires (default: never).")
        parser.add_argument("--name", help="A name to recognise it by (default: cli-<date and time>).")

    def handle(self, *args, username, scope, expires, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user {username}.")
        if not user.is_active:
            raise CommandError(f"The account {username} is disabled.")
        scopes = {s.strip() for value in scope for s in value.split(",") if s.strip()}
        unknown = scopes - set(SCOPE_NAMES)
        if unknown or not scopes:
            raise CommandError(f"Unknown scope {', '.join(sorted(unknown)) or '(none)'}: use {', '.join(SCOPE_NAMES)}.")
        if expires is not None and not 1 <= expires <= 3650:
            raise CommandError("--expires takes a number of days from 1 to 3650.")
        name = (name or f"cli-{timezone.now():%Y%m%d-%H%M%S}").strip()
        if not name or len(name) > 100:
            raise CommandError("--name takes 1 to 100 characters.")
        if ApiToken.objects.live().filter(user=user, name=name).exists():
            raise CommandError(f"{username} already has a token named {name}.")
        _, plain = ApiToken.issue(user, name, scopes, days=expires)
        self.stdout.write(plain)
