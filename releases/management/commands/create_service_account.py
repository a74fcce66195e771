from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from releases.api.models import ServiceAccount


class Command(BaseCommand):
    help = (
        "Make a service account (a user that cannot log in, for pipelines and bots) in the given groups. "
        "Then: create_api_token NAME --scope …"
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--group", action="append", default=[], help="A group it joins (repeat for more).")
        parser.add_argument("--description", default="")

    def handle(self, *args, username, group, description, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"There is already a user {username}.")
        groups = list(Group.objects.filter(name__in=group))
        missing = set(group) - {g.name for g in groups}
        if missing:
            raise CommandError(f"There is no group {', '.join(sorted(missing))}.")
        with transaction.atomic():
            user = User.objects.create_user(username)  # no password: it cannot log in
            user.groups.set(groups)
            ServiceAccount.objects.create(user=user, description=description[:200])
        self.stdout.write(f"Service account {username} created in {', '.join(g.name for g in groups) or 'no group'}.")
