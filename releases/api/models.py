"""API tokens and service accounts.

A token is shown once, when it is made, and only its SHA-256 digest is stored: the token is
32 random bytes, so a digest cannot be walked back by guessing (no slow hash is needed, and
every request can be checked with one indexed lookup). Tokens belong to a person or to a
service account, act with exactly that user's rights (groups, staff) and no more, and are
further narrowed by their scopes.
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from plumbing.rows import NewestFirst

PREFIX = "pmp_"
READ = "read"
DEPLOY = "deploy"
APPROVE = "approve"
ADMIN = "admin"
SCOPES = [
    (READ, "Read: look at services, environments, releases, deployments, builds"),
    (DEPLOY, "Deploy: create releases, request, cancel and roll back deployments, start builds"),
    (APPROVE, "Approve: approve or reject deployments"),
    (ADMIN, "Admin: freezes, locks and overrides (overriding also needs a release admin)"),
]
SCOPE_NAMES = [name for name, _ in SCOPES]
# Every scope reads; admin also carries the others.
IMPLIED = {READ: {READ}, DEPLOY: {READ, DEPLOY}, APPROVE: {READ, APPROVE}, ADMIN: set(SCOPE_NAMES)}
# Only this often is "last used" written, so a pipeline polling every second costs no writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ServiceAccount(models.Model):
    """Marks a user as a robot (a CI pipeline, a chat bot): no password, tokens only.

    Its rights come from its groups exactly as a person's do, so a pipeline that deploys to
    dev is put in the dev deployer group and nothing else.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="service_account"
    )
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.user.username} (service account)"


# A live token is one not revoked: at most one per user and name, and only live ones authenticate.
LIVE = Q(revoked_at__isnull=True)


class ApiTokenQuerySet(models.QuerySet):
    def live(self):
        return self.filter(LIVE)

    def usable(self, now=None):
        """Tokens that authenticate now: live, and not past their expiry."""
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now())
        return self.live().filter(unexpired)


class ApiToken(NewestFirst):
    """A named bearer token of one user, with scopes, an optional expiry and a last-used time."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta(NewestFirst.Meta):
        constraints = [models.UniqueConstraint(fields=["user", "name"], condition=LIVE, name="one_live_token_per_name")]

    def __str__(self):
        return f"{self.user.username}/{self.name}"

    @classmethod
    def issue(cls, user, name: str, scopes, *, days: int | None = None, created_by=None) -> tuple["ApiToken", str]:
        """Make a token; return the row and the token itself, which is never stored or shown again."""
        plain = PREFIX + secrets.token_urlsafe(32)
        expires = timezone.now() + timedelta(days=days) if days else None
        token = cls.objects.create(
            user=user,
            name=name,
            scopes=sorted(set(scopes), key=SCOPE_NAMES.index),
            prefix=plain[:12],
            digest=digest(plain),
            created_by=created_by or user,
            expires_at=expires,
        )
        return token, plain

    @classmethod
    def find(cls, plain: str) -> "ApiToken | None":
        """The token row for a presented token, whatever its state (the caller says why it fails)."""
        if not plain.startswith(PREFIX) or len(plain) > 100:
            return None
        return cls.objects.select_related("user").filter(digest=digest(plain)).first()

    def problem(self, now=None) -> str:
        """Why this token cannot be used now, or ""."""
        now = now or timezone.now()
        if self.revoked_at:
            return f"API token {self.name} was revoked."
        if self.expires_at and self.expires_at <= now:
            return f"API token {self.name} expired on {self.expires_at:%Y-%m-%d}. Create a new one."
        if not self.user.is_active:
            return f"The account {self.user.username} is disabled."
        return ""

    def allows(self, scope: str) -> bool:
        return any(scope in IMPLIED.get(granted, ()) for granted in self.scopes)

    def touch(self, now=None) -> None:
        """Record use, at most once per LAST_USED_RESOLUTION (one conditional UPDATE)."""
        now = now or timezone.now()
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        if ApiToken.objects.filter(stale, pk=self.pk).update(last_used_at=now):
            self.last_used_at = now

    def revoke(self) -> bool:
        moved = ApiToken.objects.live().filter(pk=self.pk).update(revoked_at=timezone.now())
        self.refresh_from_db(fields=["revoked_at"])
        return bool(moved)

    @property
    def is_usable(self) -> bool:
        return not self.revoked_at and not (self.expires_at and self.expires_at <= timezone.now())

    @property
    def via(self) -> str:
        """How actions taken with this token are labelled in timelines."""
        return f"API token {self.name}"
