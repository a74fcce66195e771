"""Every gate in one place. Each "no" comes with a reason a person can act on.

The pages, the API, the webhooks and the jobs all ask these functions; there is no path
around them. Freezes and locks are "overridable": a release admin may pass them with a
written reason, which the deployment records.

Roles come from groups (each environment names its deployer and approver group) and from one
permission, `clusters.release_admin` ("release admin"): deploy, roll back, build and override
freezes and locks in every environment, each use recorded in the deployment's timeline.
`is_staff` means admin-site access and nothing more here; superusers hold every permission,
release admin included. Approving always needs the environment's approver group.
"""

from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from clusters.models import Environment, FreezeWindow, Lock
from releases import states
from releases.models import Approval, Deployment


@dataclass
class Verdict:
    reasons: list[str] = field(default_factory=list)
    overridable: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)
    # Refused because something else is under way (an active deployment): the API answers 409.
    conflict: bool = False
    # The user may pass the overridable reasons with a written reason (a release admin).
    may_override: bool = False
    # Allowed only through the release admin permission, not the environment's group: the flow
    # records that in the timeline.
    as_release_admin: bool = False

    def __bool__(self) -> bool:
        return not self.reasons

    @property
    def message(self) -> str:
        return " ".join(self.reasons)

    def refuse(self, reason: str) -> None:
        self.reasons.append(reason)

    def refuse_unless_overridden(self, reason: str, user, override_reason: str) -> None:
        self.may_override = is_release_admin(user)
        if self.may_override and override_reason.strip():
            self.overridden.append(reason)
        else:
            self.reasons.append(reason)
            self.overridable.append(reason)


class Refused(Exception):
    """A rule said no; the message is meant for the person who asked.

    `verdict` holds every reason (pages and the API list them); `conflict` marks a refusal
    caused by something else under way, such as another active deployment (HTTP 409).
    """

    def __init__(self, verdict_or_message, *, conflict: bool = False):
        message = getattr(verdict_or_message, "message", verdict_or_message)
        super().__init__(message)
        self.verdict = verdict_or_message if isinstance(verdict_or_message, Verdict) else None
        # Not `self.verdict and …`: a verdict that refuses is falsy.
        self.conflict = conflict or (self.verdict is not None and self.verdict.conflict)

    @property
    def reasons(self) -> list[str]:
        # `is not None`: a Verdict that refuses is falsy.
        return list(self.verdict.reasons) if self.verdict is not None else [str(self)]


def group_ids(user) -> frozenset[int]:
    """The user's group ids, read once per request and kept on the user object."""
    if not user.is_authenticated:
        return frozenset()
    if not hasattr(user, "_pampam_group_ids"):
        user._pampam_group_ids = frozenset(user.groups.values_list("id", flat=True))
    return user._pampam_group_ids


RELEASE_ADMIN = "clusters.release_admin"


def is_release_admin(user) -> bool:
    """Holds the release admin permission (directly, through a group, or as a superuser)."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(RELEASE_ADMIN))


def in_deployer_group(user, environment) -> bool:
    return environment.deployer_group_id is not None and environment.deployer_group_id in group_ids(user)


def is_deployer(user, environment) -> bool:
    return in_deployer_group(user, environment) or is_release_admin(user)


def _check_deployer(verdict, user, environment, reason: str) -> None:
    if in_deployer_group(user, environment):
        return
    if is_release_admin(user):
        verdict.as_release_admin = True
        return
    verdict.refuse(reason)


def is_approver(user, environment) -> bool:
    return environment.approver_group_id in group_ids(user)


def _group_name(group) -> str:
    return group.name if group else "no group is set"


def can_view(user, deployment=None) -> bool:
    """May `user` see `deployment` (its page and its live stream) or, without one, the dashboard?

    Today every active, logged-in user may; the page and the websocket consumers both ask here,
    so narrowing it later (per team, per environment) is one change.
    """
    return bool(user and user.is_authenticated and user.is_active)


def can_request(user, release, environment, *, override_reason: str = "", now=None, facts=None) -> Verdict:
    """May `user` ask to deploy `release` to `environment` now?"""
    facts = facts or RequestFacts.load(release, [environment], now or timezone.now())
    verdict = Verdict()
    if environment.archived_at is not None:
        verdict.refuse(f"{environment.name} is archived: nothing deploys there any more.")
    _check_deployer(
        verdict,
        user,
        environment,
        f"You are not a deployer for {environment.name} "
        f"({_group_name(environment.deployer_group)}). Ask an admin to add you.",
    )
    _check_promotion(verdict, release, environment, facts)
    _check_tests(verdict, release, environment)
    _check_freeze_and_locks(verdict, user, environment, override_reason, facts)
    _refuse_if_active(verdict, release.service, environment, facts.active.get(environment.pk))
    return verdict


def can_request_each(user, release, environments, *, now=None, held=None, path=None, keep=None) -> list[tuple]:
    """`can_request` for every environment at once, in a fixed number of queries (the release
    page, which passes the freezes and locks in force it has read, `guards.in_force`, every
    environment, archived ones too, for the promotion path, `catalog.environments`, and how it
    keeps what it reads of the deployments: `keep(name, parts, read)`, see RequestFacts.load)."""
    environments = list(environments)
    facts = RequestFacts.load(release, environments, now or timezone.now(), held, path, keep)
    return [(env, can_request(user, release, env, now=now, facts=facts)) for env in environments]


def _read_now(name, parts, read):
    return read()


@dataclass
class RequestFacts:
    """What the request gates look at, read for many environments at once."""

    previous: dict  # environment id → the environment before it on the promotion path, or None
    reached: set  # ids of environments where the release has succeeded
    freezes: dict  # environment id → the freeze window in force
    locks: dict  # environment id → active locks that cover the release's service
    active: dict  # environment id → the service's active deployment there

    @classmethod
    def load(cls, release, environments, now, held=None, path=None, keep=None) -> "RequestFacts":
        """Read for `environments`; what a page has read already is passed (see can_request_each).
        `keep(name, parts, read)` returns what `read()` returns, or what it returned before for the
        same `name` and `parts` if nothing it reads changed since (plumbing.fragments.cached)."""
        ids = [e.pk for e in environments]
        if path is None:
            path = Environment.objects.all()
        path = sorted(path, key=lambda e: (-e.position, e.slug))
        previous = {e.pk: next((p for p in path if p.position < e.position), None) for e in environments}
        wanted = sorted({previous[e.pk].pk for e in environments if e.requires_previous and previous[e.pk]})
        reached, active = (keep or _read_now)(
            "request-facts", [release.pk, ids, wanted], lambda: cls._deployments(release, ids, wanted)
        )
        if held is not None:
            freezes = {pk: held[pk].freeze for pk in ids if held[pk].freeze}
            locks = {pk: held[pk].locks_for(release.service.slug) for pk in ids}
        else:
            freezes, locks = cls._guards(release, ids, now)
        return cls(previous, reached, freezes, locks, active)

    @staticmethod
    def _deployments(release, ids, wanted) -> tuple[set, dict]:
        """The environments among `wanted` where the release succeeded, and the service's active
        deployment per environment id (named in a refusal only: its number and state)."""
        reached = set()
        if wanted:
            reached = set(
                Deployment.objects.filter(release=release, environment_id__in=wanted, state=states.SUCCEEDED)
                .order_by()
                .values_list("environment_id", flat=True)
                .distinct()
            )
        active = {}
        running = Deployment.objects.active().filter(service_id=release.service_id, environment_id__in=ids)
        for deployment in running.only("pk", "state", "kind", "environment_id"):
            active.setdefault(deployment.environment_id, deployment)
        return reached, active

    @staticmethod
    def _guards(release, ids, now) -> tuple[dict, dict]:
        """The freezes in force and the locks covering the release's service, per environment id."""
        freezes, locks = {}, {}
        for freeze in FreezeWindow.objects.in_force(now).filter(environment_id__in=ids):
            freezes.setdefault(freeze.environment_id, freeze)
        service_locks = Q(service_slug="") | Q(service_slug=release.service.slug)
        for lock in (
            Lock.objects.in_force(now).filter(service_locks, environment_id__in=ids).select_related("locked_by")
        ):
            locks.setdefault(lock.environment_id, []).append(lock)
        return freezes, locks


def can_rollback(
    user, service, environment, *, reason: str = "", override_reason: str = "", plan=None, seen=None
) -> Verdict:
    """May `user` roll `service` back in `environment` now?

    Rollbacks skip promotion and approvals (they restore a release that ran there) but not
    locks; there must be something to go back to (see DeploymentQuerySet.rollback_plan), and in
    production the person says why. Pass `reason=None` to ask before the reason is known (to
    decide whether to offer the button). A page that has read the pair already passes what it
    read (`plan`, and `seen`: the locks in force over the service there and its active
    deployment, or None); otherwise they are read here.
    """
    verdict = Verdict()
    _check_deployer(verdict, user, environment, f"You are not a deployer for {environment.name}.")
    if seen is None:
        seen = (environment.active_locks(service.slug), _active(service, environment))
    locks, active = seen
    for lock in locks:
        verdict.refuse_unless_overridden(_lock_reason(lock, environment), user, override_reason)
    _refuse_if_active(verdict, service, environment, active)
    plan = plan if plan is not None else Deployment.objects.rollback_plan(service, environment)
    if not plan:
        verdict.refuse(plan.refusal)
    if environment.is_production and reason is not None and not reason.strip():
        verdict.refuse(f"{environment.name} is production: say why you are rolling back.")
    return verdict


def can_build(user, service, environments=None) -> Verdict:
    """Deployers of any environment (or release admins) may start a build of a service with a
    build job. A page passes every environment it has read (`catalog.environments`)."""
    verdict = Verdict()
    if not service.jenkins_build_job:
        verdict.refuse(f"{service.name} has no Jenkins build job. An admin can set one on the service.")
    groups = group_ids(user)
    if environments is None:
        deploys = Environment.objects.filter(deployer_group_id__in=groups).exists()
    else:
        deploys = any(e.deployer_group_id in groups for e in environments)
    if not (deploys or is_release_admin(user)):
        verdict.refuse("Only deployers of an environment can start builds. Ask an admin to add you.")
    return verdict


def can_abort_build(user, build) -> Verdict:
    verdict = can_build(user, build.service) if build.service else Verdict()
    if build.service is None and not is_release_admin(user):
        verdict.refuse("Only release admins can stop builds that belong to no service.")
    if not build.is_active:
        verdict.refuse(f"Build #{build.pk} is {build.state_label.lower()}: there is nothing to stop.")
    return verdict


def can_abort_deploy_job(user, deployment) -> Verdict:
    verdict = Verdict()
    if not is_deployer(user, deployment.environment):
        verdict.refuse(f"You are not a deployer for {deployment.environment.name}.")
    if deployment.state != states.BUILDING or not deployment.jenkins_queue_id:
        verdict.refuse(f"Deployment #{deployment.pk} has no Jenkins deploy job running.")
    return verdict


def _check_promotion(verdict, release, environment, facts) -> None:
    if not environment.requires_previous:
        return
    previous = facts.previous.get(environment.pk)
    if previous is None:
        return
    if previous.pk not in facts.reached:
        verdict.refuse(
            f"{release.service.name} {release.version} has not succeeded in {previous.name} yet: deploy it there first."
        )


def _check_tests(verdict, release, environment) -> None:
    if not environment.requires_passing_tests:
        return
    summary = release.test_summary or {}
    what = f"{release.service.name} {release.version}"
    if "failed" not in summary and "total" not in summary:
        verdict.refuse(
            f"{what} has no test results and {environment.name} requires passing tests. "
            "Build it in Jenkins with a JUnit report, or record its results through the API."
        )
        return
    failed, total = int(summary.get("failed") or 0), int(summary.get("total") or 0)
    if failed:
        build = f"build #{summary['build']}" if summary.get("build") else what
        verdict.refuse(
            f"Tests failed on {build}: {failed} of {total} failed. {environment.name} requires passing tests: "
            "fix them and deploy a new release."
        )


def _check_freeze_and_locks(verdict, user, environment, override_reason, facts) -> None:
    freeze = facts.freezes.get(environment.pk)
    if freeze:
        until = timezone.localtime(freeze.ends_at).strftime("%Y-%m-%d %H:%M")
        verdict.refuse_unless_overridden(
            f"{environment.name} is frozen until {until} ({freeze.reason}). An admin can override with a reason.",
            user,
            override_reason,
        )
    for lock in facts.locks.get(environment.pk, []):
        verdict.refuse_unless_overridden(_lock_reason(lock, environment), user, override_reason)


def _lock_reason(lock, environment) -> str:
    who = lock.locked_by.username if lock.locked_by else "an admin"
    scope = f"for {lock.service_slug}" if lock.service_slug else ""
    until = f" until {timezone.localtime(lock.until):%Y-%m-%d %H:%M}" if lock.until else ""
    return (
        f"{environment.name} is locked {scope} by {who}{until}: {lock.reason}. An admin can override with a reason."
    ).replace("  ", " ")


def _active(service, environment):
    return Deployment.objects.active().filter(service=service, environment=environment).first()


def _refuse_if_active(verdict, service, environment, active) -> None:
    if active:
        verdict.conflict = True
        verdict.refuse(
            f"{service.name} already has deployment #{active.pk} {active.state_label.lower()} in "
            f"{environment.name}. Wait for it to finish or cancel it."
        )


def can_decide(user, deployment, decision: str) -> Verdict:
    """May `user` approve (or reject) `deployment`?"""
    verdict = Verdict()
    environment = deployment.environment
    if deployment.state != states.PENDING_APPROVAL:
        verdict.refuse(f"Deployment #{deployment.pk} is {deployment.state_label.lower()}: there is nothing to decide.")
        return verdict
    if not is_approver(user, environment):
        verdict.refuse(f"You are not an approver for {environment.name} ({_group_name(environment.approver_group)}).")
    if decision == Approval.APPROVE and deployment.requested_by_id == user.pk and not environment.allow_self_approval:
        verdict.refuse(f"You requested this deployment; {environment.name} needs someone else to approve it.")
    if deployment.approvals.filter(user=user).exists():
        verdict.refuse("You have already decided on this deployment.")
    return verdict


def can_cancel(user, deployment) -> Verdict:
    verdict = Verdict()
    if deployment.state not in states.CANCELLABLE:
        verdict.refuse(f"Deployment #{deployment.pk} is {deployment.state_label.lower()}: too late to cancel.")
    elif not (deployment.requested_by_id == user.pk or is_deployer(user, deployment.environment)):
        verdict.refuse(f"Only the requester or a deployer for {deployment.environment.name} can cancel.")
    return verdict


def approvals_count(deployment, decisions=None) -> int:
    """How many approved `deployment` (counted among `decisions` when its approvals are read already)."""
    if decisions is not None:
        return sum(1 for decision in decisions if decision.decision == Approval.APPROVE)
    return deployment.approvals.filter(decision=Approval.APPROVE).count()


# Freezes and locks ------------------------------------------------------------------------------
# Whoever may deploy to an environment may also stop deployments there: lock it (or one service
# in it) during an incident, and schedule its freezes. Release admins may everywhere.


def can_lock(user, environment) -> Verdict:
    verdict = Verdict()
    if not is_deployer(user, environment):
        verdict.refuse(
            f"Only deployers of {environment.name} ({_group_name(environment.deployer_group)}) can lock it "
            "or schedule its freezes."
        )
    return verdict


def can_unlock(user, lock) -> Verdict:
    verdict = Verdict()
    if lock.released_at is not None:
        verdict.refuse("This lock was released already.")
    elif not (lock.locked_by_id == user.pk or is_deployer(user, lock.environment)):
        verdict.refuse(f"Only whoever locked it or a deployer of {lock.environment.name} can release this lock.")
    return verdict


def can_create_release(user, service) -> Verdict:
    """Releases come from CI: deployers of any environment (or release admins) may record one."""
    verdict = Verdict()
    deploys = Environment.objects.filter(deployer_group_id__in=group_ids(user)).exists()
    if not (deploys or is_release_admin(user)):
        verdict.refuse(
            f"Only deployers of an environment can record releases of {service.name}. "
            "Ask an admin to add you (or your pipeline's service account) to a deployer group."
        )
    return verdict
