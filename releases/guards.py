"""Freezes and locks as people use them from the pages: lock an environment (or one service in
it) with a reason and an optional end, release it, schedule and change freezes.

Who may do what is answered in releases.rules (deployers of an environment, and admins). Slack
hears of every change through the receivers in releases.notifications (the same for changes
made in the admin); open pages hear through the activity stream, from the receivers below.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from clusters.models import FreezeWindow, Lock
from plumbing import fragments, live
from releases import rules


def lock(user, environment, *, reason: str, service=None, until=None) -> Lock:
    """Stop deployments to `environment` (or of `service` there) until released or `until`."""
    verdict = rules.can_lock(user, environment)
    if not verdict:
        raise rules.Refused(verdict)
    return Lock.objects.create(
        environment=environment,
        service_slug=service.slug if service else "",
        reason=reason.strip(),
        locked_by=user,
        until=until,
    )


def unlock(user, lock: Lock) -> Lock:
    verdict = rules.can_unlock(user, lock)
    if not verdict:
        raise rules.Refused(verdict)
    with transaction.atomic():
        # Compare-and-swap: two people releasing at once release it once (one Slack message).
        lock = Lock.objects.select_for_update(of=("self",)).select_related("environment", "locked_by").get(pk=lock.pk)
        if lock.released_at is not None:
            raise rules.Refused("This lock was released already.", conflict=True)
        lock.released_at = timezone.now()
        lock.released_by = user
        lock.save(update_fields=["released_at", "released_by"])
    return lock


def schedule_freeze(user, environment, *, starts_at, ends_at, reason: str) -> FreezeWindow:
    verdict = rules.can_lock(user, environment)
    if not verdict:
        raise rules.Refused(verdict)
    return FreezeWindow.objects.create(
        environment=environment, starts_at=starts_at, ends_at=ends_at, reason=reason.strip(), created_by=user
    )


def change_freeze(user, freeze: FreezeWindow, *, starts_at, ends_at, reason: str) -> FreezeWindow:
    verdict = rules.can_lock(user, freeze.environment)
    if not verdict:
        raise rules.Refused(verdict)
    freeze.starts_at, freeze.ends_at, freeze.reason = starts_at, ends_at, reason.strip()
    freeze.save(update_fields=["starts_at", "ends_at", "reason"])
    return freeze


def remove_freeze(user, freeze: FreezeWindow) -> None:
    verdict = rules.can_lock(user, freeze.environment)
    if not verdict:
        raise rules.Refused(verdict)
    freeze.delete()


def release_expired_locks(now=None) -> int:
    """Periodic: a lock whose `until` has passed stops blocking at once (rules ask `in_force`);
    this records it as released then, so Slack hears that it lifted and lists stay short."""
    now = now or timezone.now()
    expired = Lock.objects.filter(released_at__isnull=True, until__lte=now).select_related("environment")
    count = 0
    for expiring in expired:
        expiring.released_at = expiring.until
        expiring.save(update_fields=["released_at"])
        count += 1
    return count


@dataclass
class EnvironmentGuards:
    """What stops deployments to one environment now, and the freezes to come."""

    freeze: FreezeWindow | None = None
    upcoming: list = field(default_factory=list)
    locks: list = field(default_factory=list)  # in force, whole environment or one service

    def locks_for(self, service_slug: str) -> list:
        return [lock for lock in self.locks if lock.service_slug in ("", service_slug)]

    @property
    def environment_lock(self):
        return next((lock for lock in self.locks if not lock.service_slug), None)


def in_force(environments, now=None) -> dict[int, EnvironmentGuards]:
    """Per environment id: its freeze in force, freezes to come and locks in force. For pages:
    read from the freezes not yet over and the locks not yet lifted, kept in memory until a guard
    or the catalog changes (`_not_over`), and sorted by `now` here: one that starts or ends with
    the clock needs no change to show."""
    now = now or timezone.now()
    read_at, freezes, locks = fragments.cached("guards", GUARD_SCOPES, [], lambda: _not_over(now))
    if now < read_at:  # asked about a moment before the kept rows' own
        read_at, freezes, locks = _not_over(now)
    guards = {e.pk: EnvironmentGuards() for e in environments}
    for freeze in freezes:
        held = guards.get(freeze.environment_id)
        if held is None or freeze.ends_at <= now:
            continue
        if freeze.starts_at <= now and held.freeze is None:
            held.freeze = freeze
        elif freeze.starts_at > now:
            held.upcoming.append(freeze)
    for held_lock in locks:
        if held_lock.environment_id in guards and (held_lock.until is None or held_lock.until > now):
            guards[held_lock.environment_id].locks.append(held_lock)
    return guards


# Freezes and locks, and the names of the people who made them.
GUARD_SCOPES = (fragments.GUARD, fragments.CATALOG)


def _not_over(now) -> tuple:
    """(`now`, the freezes not over then, the locks in force then): two queries."""
    freezes = list(FreezeWindow.objects.not_over(now).select_related("created_by"))
    return now, freezes, list(Lock.objects.in_force(now).select_related("locked_by"))


def fingerprint(held: dict[int, EnvironmentGuards]) -> list:
    """Which freezes and locks `in_force` found, by id: it moves when one starts or ends with
    the clock (an edit to one is a "guard" change of its own)."""
    return [
        (env, getattr(g.freeze, "pk", None), [f.pk for f in g.upcoming], [lock.pk for lock in g.locks])
        for env, g in sorted(held.items())
    ]


def _tell_pages(environment) -> None:
    live.activity({"kind": "guard", "environment": environment.slug})


@receiver(post_save, sender=Lock)
@receiver(post_delete, sender=Lock)
@receiver(post_save, sender=FreezeWindow)
@receiver(post_delete, sender=FreezeWindow)
def on_guard_changed(sender, instance, **kwargs):
    """Pages showing freezes and locks (dashboard, service, release, environment) re-read them."""
    _tell_pages(instance.environment)
