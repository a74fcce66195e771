"""Releases recorded from CI through the API: asks its rule in releases.rules first and raises
`rules.Refused` with the rule's reasons. (Deployments go through releases.flows, freezes and
locks through releases.guards.)
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction

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
