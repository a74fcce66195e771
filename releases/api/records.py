"""Writes the API makes besides deployments (which go through releases.flows): releases from
CI, freeze windows and locks. Each asks its rule in releases.rules first and raises
`rules.Refused` with the rule's reasons; rows change in one transaction.
"""

from dataclasses import dataclass

from auditlog.context import set_actor
from django.db import IntegrityError, transaction
from django.utils import timezone

from clusters.models import FreezeWindow, Lock
from releases import rules
from releases.models import Release


@dataclass
class Artifact:
    """What CI says it built."""

    version: str
    image: str
    git_sha: str = ""
    build_url: str = ""
    test_summary: dict | None = None

    def matches(self, release: Release) -> bool:
        return release.image == self.image and (not self.git_sha or release.git_sha == self.git_sha)


def create_release(user, service, artifact: Artifact) -> tuple[Release, bool]:
    """Record a release of `service`; (release, created).

    A CI step that is retried sends the same artifact again: that answers the existing release
    unchanged. The same version with another image or commit is refused: releases are immutable.
    """
    verdict = rules.can_create_release(user, service)
    if not verdict:
        raise rules.Refused(verdict)
    existing = Release.objects.filter(service=service, version=artifact.version).first()
    if existing is None:
        try:
            with transaction.atomic():
                return _insert(user, service, artifact), True
        except IntegrityError:  # a concurrent retry of the same step won
            existing = Release.objects.get(service=service, version=artifact.version)
    if artifact.matches(existing):
        return existing, False
    raise rules.Refused(
        f"{service.name} already has a release {artifact.version} ({existing.image}). "
        "Releases are immutable: build a new version.",
        conflict=True,
    )


def _insert(user, service, artifact: Artifact) -> Release:
    return Release.objects.create(
        service=service,
        version=artifact.version,
        image=artifact.image,
        git_sha=artifact.git_sha,
        jenkins_build_url=artifact.build_url,
        test_summary=artifact.test_summary or {},
        source="api",
        created_by=user,
    )


def lock(user, environment, service, reason: str) -> Lock:
    """Stop deployments to `environment` (or of one `service` there) until released."""
    verdict = rules.can_lock(user, environment)
    if not verdict:
        raise rules.Refused(verdict)
    with set_actor(user):
        return Lock.objects.create(
            environment=environment, service_slug=service.slug if service else "", reason=reason, locked_by=user
        )


def unlock(user, lock: Lock) -> Lock:
    verdict = rules.can_unlock(user, lock)
    if not verdict:
        raise rules.Refused(verdict)
    with set_actor(user), transaction.atomic():
        # The row lock makes two people releasing at once see "released" once (and both audited).
        lock = Lock.objects.select_for_update().select_related("environment").get(pk=lock.pk)
        if lock.released_at:
            raise rules.Refused(f"Lock #{lock.pk} on {lock.environment.name} is already released.", conflict=True)
        lock.released_at = timezone.now()
        lock.save(update_fields=["released_at"])
    return lock


def freeze(user, environment, starts_at, ends_at, reason: str) -> FreezeWindow:
    verdict = rules.can_freeze(user, environment)
    if not verdict:
        raise rules.Refused(verdict)
    with set_actor(user):
        return FreezeWindow.objects.create(
            environment=environment, starts_at=starts_at, ends_at=ends_at, reason=reason, created_by=user
        )


def end_freeze(user, window: FreezeWindow) -> FreezeWindow | None:
    """End a freeze now; one that has not started yet is removed (None)."""
    now = timezone.now()
    verdict = rules.can_end_freeze(user, window, now)
    if not verdict:
        raise rules.Refused(verdict)
    with set_actor(user):
        if window.starts_at >= now:
            window.delete()
            return None
        window.ends_at = now
        window.save(update_fields=["ends_at"])
    return window
