"""What people do to deployments: request, approve or reject, cancel, roll back.

Each flow asks `rules`, then changes rows in one transaction, letting the database settle
races (the partial unique constraint for "one active deployment", a row lock for counting
approvals). Work outside the database is queued through `plumbing.queues` after commit.
"""

from django.db import IntegrityError, transaction
from django.db.models import F

from plumbing import queues
from releases import notifications, rules, states
from releases.models import Approval, Deployment, Release, TransitionRefused


def last_succeeded(service, environment) -> Deployment | None:
    return (
        Deployment.objects.filter(service=service, environment=environment, state=states.SUCCEEDED)
        .select_related("release")
        .order_by(F("finished_at").desc(nulls_last=True), "-id")
        .first()
    )


def request_deployment(user, release: Release, environment, *, override_reason: str = "") -> Deployment:
    """Create a deployment of `release` to `environment`, pending approval or approved."""
    verdict = rules.can_request(user, release, environment, override_reason=override_reason)
    if not verdict:
        raise rules.Refused(verdict)
    previous = last_succeeded(release.service, environment)
    needs = environment.required_approvals
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                service=release.service,
                environment=environment,
                release=release,
                previous_release=previous.release if previous else None,
                requested_by=user,
                required_approvals=needs,
                override_reason=override_reason.strip() if verdict.overridden else "",
                state=states.PENDING_APPROVAL,
            )
            deployment.log(
                "requested",
                f"{user.username} requested {release.service.name} {release.version} in {environment.name}.",
                actor=user,
                data={"required_approvals": needs},
            )
            _record_release_admin(deployment, user, verdict)
            if verdict.overridden:
                deployment.log(
                    "override",
                    f"{user.username} overrode: {' '.join(verdict.overridden)} Reason: {override_reason.strip()}",
                    actor=user,
                    data={"overridden": verdict.overridden, "reason": override_reason.strip()},
                )
            if needs == 0:
                approve(deployment, "No approvals are required here.")
            notifications.approval_requested(deployment)
    except IntegrityError:
        # Someone else's request won the race for this service and environment.
        raise rules.Refused(
            f"{release.service.name} already has an active deployment in {environment.name}.", conflict=True
        ) from None
    return deployment


def _record_release_admin(deployment: Deployment, user, verdict) -> None:
    """A request allowed by the release admin permission rather than the environment's group is
    said so in the timeline (the audit trail), with who and which group they are not in."""
    if not verdict.as_release_admin:
        return
    group = deployment.environment.deployer_group
    deployment.log(
        "release_admin",
        f"{user.username} acted as release admin: not in the deployer group "
        f"{group.name if group else '(none set)'} of {deployment.environment.name}.",
        actor=user,
        data={"permission": rules.RELEASE_ADMIN},
    )


def approve(deployment: Deployment, message: str, actor=None) -> None:
    from releases import jobs

    deployment.transition(states.APPROVED, kind="state", message=message, actor=actor)
    queues.enqueue(jobs.run_deployment, deployment.pk)


def decide(user, deployment: Deployment, decision: str, comment: str = "", *, via: str = "") -> Deployment:
    """Record one person's approval or rejection; enough approvals approve, any rejection rejects.

    `via` says how it was made when not in the browser ("API token ci-bot"); the timeline shows it.
    """
    with transaction.atomic():
        # The row lock makes concurrent decisions on one deployment count one after another.
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        verdict = rules.can_decide(user, deployment, decision)
        if not verdict:
            raise rules.Refused(verdict)
        try:
            with transaction.atomic():
                Approval.objects.create(deployment=deployment, user=user, decision=decision, comment=comment.strip())
        except IntegrityError:
            raise rules.Refused("You have already decided on this deployment.") from None
        _after_decision(user, deployment, decision, comment.strip(), via)
    return deployment


def _after_decision(user, deployment, decision, comment, via="") -> None:
    said = (f" via {via}" if via else "") + (f": “{comment}”" if comment else ".")
    extra = {"via": via} if via else {}
    if decision == Approval.REJECT:
        deployment.log("rejection", f"{user.username} rejected{said}", actor=user, data=extra)
        deployment.transition(
            states.REJECTED,
            kind="state",
            message=f"Rejected by {user.username}.",
            actor=user,
            reason=comment or f"Rejected by {user.username}.",
        )
        return
    count = rules.approvals_count(deployment)
    deployment.log(
        "approval",
        f"{user.username} approved ({count} of {deployment.required_approvals}){said}",
        actor=user,
        data={"count": count, "required": deployment.required_approvals, **extra},
    )
    if count >= deployment.required_approvals:
        approve(deployment, f"Approved by {count} of {deployment.required_approvals}.", actor=user)


def cancel(user, deployment: Deployment, reason: str = "") -> Deployment:
    from releases import jobs

    verdict = rules.can_cancel(user, deployment)
    if not verdict:
        raise rules.Refused(verdict)
    was_in_cluster = deployment.state in states.IN_CLUSTER or deployment.state == states.BUILDING
    try:
        deployment.transition(
            states.CANCELLED,
            kind="state",
            message=f"Cancelled by {user.username}." + (f" {reason.strip()}" if reason.strip() else ""),
            actor=user,
            reason=reason.strip() or f"Cancelled by {user.username}.",
        )
    except TransitionRefused as exc:
        raise rules.Refused(f"Deployment #{deployment.pk} changed meanwhile: {exc}", conflict=True) from None
    if was_in_cluster:
        queues.enqueue(jobs.stop_rollout, deployment.pk)
    return deployment


def rollback_target(latest: Deployment | None, running: Deployment | None) -> Release | None:
    """The release a rollback goes to.

    Normally the one that ran before the current success. But when the newest deployment
    failed or was cancelled after touching the cluster (and was not rolled back), the cluster
    runs a broken template: going back means restoring the last success itself.
    """
    if running is None:
        return None
    broken = (
        latest is not None
        and latest.pk != running.pk
        and latest.state in (states.FAILED, states.CANCELLED)
        and latest.started_at is not None
        and latest.release_id != running.release_id
    )
    return running.release if broken else running.previous_release


def rollback(user, service, environment, *, reason: str = "", override_reason: str = "") -> Deployment:
    """Deploy the release to go back to (see rollback_target), as a deployment of kind rollback.

    `reason` is the person's reason (production asks for one), kept on the deployment."""
    verdict = rules.can_rollback(user, service, environment, override_reason=override_reason)
    if not verdict:
        raise rules.Refused(verdict)
    current = last_succeeded(service, environment)
    latest = Deployment.objects.filter(service=service, environment=environment).order_by("-id").first()
    target = rollback_target(latest, current)
    if target is None:
        raise rules.Refused(f"There is no earlier release of {service.name} in {environment.name} to go back to.")
    leaving = latest.release if latest and latest.release_id != current.release_id else current.release
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                service=service,
                environment=environment,
                release=target,
                previous_release=leaving,
                kind=Deployment.ROLLBACK,
                requested_by=user,
                state=states.PENDING_APPROVAL,
                reason=reason.strip(),
                override_reason=override_reason.strip() if verdict.overridden else "",
            )
            because = f" Reason: {reason.strip()}" if reason.strip() else ""
            deployment.log(
                "requested",
                f"{user.username} rolled {service.name} in {environment.name} back from "
                f"{leaving.version} to {target.version}.{because}",
                actor=user,
                data={"reason": reason.strip()},
            )
            _record_release_admin(deployment, user, verdict)
            approve(deployment, "Rollbacks need no approval.", actor=user)
    except IntegrityError:
        raise rules.Refused(
            f"{service.name} already has an active deployment in {environment.name}.", conflict=True
        ) from None
    return deployment
