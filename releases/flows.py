"""What people (and the portal itself) do to deployments: request, approve or reject, cancel, roll back.

Each flow asks `rules`, then changes rows in one transaction, letting the database settle
races (the partial unique constraint for "one active deployment", a row lock for counting
approvals). Work outside the database follows from the transition: `releases.receivers`
queues the job a new state asks for once it commits (see there), and the reconciler rings
again whatever a crash left unrung.
"""

from django.db import IntegrityError, transaction

from releases import notifications, rules, states
from releases.models import Approval, Deployment, Release, TransitionRefused


def last_good(service, environment) -> Release | None:
    """The release a rollback of (service, environment) would restore now, if any."""
    return Deployment.objects.rollback_plan(service, environment).target


def request_deployment(user, release: Release, environment, *, override_reason: str = "") -> Deployment:
    """Create a deployment of `release` to `environment`, pending approval or approved."""
    verdict = rules.can_request(user, release, environment, override_reason=override_reason)
    if not verdict:
        raise rules.Refused(verdict)
    previous = Deployment.objects.of_pair(release.service, environment).filter(state=states.SUCCEEDED).first()
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
            _log_override(deployment, user, verdict, override_reason)
            if needs == 0:
                approve(deployment, "No approvals are required here.")
            notifications.approval_requested(deployment)
    except IntegrityError:
        raise _already_active(release.service, environment) from None
    return deployment


def _log_override(deployment, user, verdict, override_reason: str) -> None:
    if verdict.overridden:
        deployment.log(
            "override",
            f"{user.username} overrode: {' '.join(verdict.overridden)} Reason: {override_reason.strip()}",
            actor=user,
            data={"overridden": verdict.overridden, "reason": override_reason.strip()},
        )


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


def _already_active(service, environment) -> rules.Refused:
    """Someone else's request won the race for this service and environment."""
    return rules.Refused(f"{service.name} already has an active deployment in {environment.name}.", conflict=True)


def approve(deployment: Deployment, message: str, actor=None) -> None:
    """Approved: the run job is queued once this commits (releases.receivers)."""
    deployment.transition(states.APPROVED, message=message, actor=actor)


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
    """Cancel a deployment; one that changed the cluster owes it a stop (pause or undo)."""
    verdict = rules.can_cancel(user, deployment)
    if not verdict:
        raise rules.Refused(verdict)
    reason = reason.strip()
    try:
        deployment.transition(
            states.CANCELLED,
            message=f"Cancelled by {user.username}." + (f" {reason}" if reason else ""),
            actor=user,
            reason=reason or f"Cancelled by {user.username}.",
            # Approved may already have patched (a job between its PATCH and its commit).
            followup=Deployment.STOP if deployment.state != states.PENDING_APPROVAL else "",
        )
    except TransitionRefused as exc:
        raise rules.Refused(f"Deployment #{deployment.pk} changed meanwhile: {exc}", conflict=True) from None
    return deployment


def rollback(user, service, environment, *, reason: str = "", override_reason: str = "") -> Deployment:
    """Go back to the last good release, as a new deployment of kind rollback (no approvals)."""
    plan = Deployment.objects.rollback_plan(service, environment)
    verdict = rules.can_rollback(user, service, environment, reason=reason, override_reason=override_reason, plan=plan)
    if not verdict:
        raise rules.Refused(verdict)
    reason = reason.strip()
    leaving = plan.undoes.release
    try:
        with transaction.atomic():
            deployment = _create_rollback(plan, user=user, reason=reason)
            if verdict.overridden:
                deployment.override_reason = override_reason.strip()
                deployment.save(update_fields=["override_reason"])
            deployment.log(
                "requested",
                f"{user.username} rolled {service.name} in {environment.name} back from {leaving.version} to "
                f"{plan.target.version}." + (f" Reason: {reason}" if reason else ""),
                actor=user,
                data={"rolls_back": plan.undoes.pk, "reason": reason},
            )
            _record_release_admin(deployment, user, verdict)
            _log_override(deployment, user, verdict, override_reason)
            approve(deployment, "Rollbacks need no approval: they restore a release that ran here.", actor=user)
    except IntegrityError:
        raise _already_active(service, environment) from None
    return deployment


def roll_back_automatically(failed: Deployment) -> Deployment | None:
    """A rollout failed where the environment rolls back by itself: deploy the last good release.

    Done once: the failed deployment's follow-up is cleared in the same transaction, whatever the
    outcome, with a note saying why when there is nothing to do (superseded by a newer
    deployment, nothing good to go back to, someone else's deployment under way).
    """
    with transaction.atomic():
        failed = (
            Deployment.objects.select_for_update().select_related("service", "environment", "release").get(pk=failed.pk)
        )
        if failed.followup != Deployment.AUTO_ROLLBACK:
            return None
        Deployment.objects.filter(pk=failed.pk).update(followup="")
        why_not = _why_not_roll_back(failed)
        if why_not:
            failed.log("rollback", f"Not rolled back automatically: {why_not}")
            return None
        target = failed.last_good_before()
        try:
            with transaction.atomic():
                rollback = _create_rollback(
                    Deployment.objects.rollback_plan(failed.service, failed.environment), automatic=True
                )
        except IntegrityError:
            failed.log("rollback", "Not rolled back automatically: another deployment is under way here.")
            return None
        failed.log(
            "rollback",
            f"Rolling back automatically to {target.version} as deployment #{rollback.pk}.",
            data={"rollback": rollback.pk, "target": target.version},
        )
        rollback.log(
            "requested",
            f"The portal rolled {failed.service.name} in {failed.environment.name} back from "
            f"{failed.release.version} (deployment #{failed.pk} failed) to {target.version}.",
            data={"rolls_back": failed.pk, "automatic": True},
        )
        approve(rollback, "Approved by the portal: automatic rollbacks restore the last good release.")
    return rollback


def _why_not_roll_back(failed: Deployment) -> str:
    newer = Deployment.objects.of_pair(failed.service, failed.environment).filter(pk__gt=failed.pk)
    newest = newer.filter(started_at__isnull=False).order_by("-id").first() or newer.active().first()
    if newest is not None:
        return f"deployment #{newest.pk} ({newest.release.version}) came after it."
    if failed.is_rollback:
        return "it was itself a rollback; a person decides what runs next."
    if failed.last_good_before() is None:
        return f"there is no earlier good release of {failed.service.name} here."
    return ""


def _create_rollback(plan, *, user=None, reason: str = "", automatic: bool = False) -> Deployment:
    return Deployment.objects.create_rollback(
        plan.undoes,
        plan.target,
        automatic=automatic,
        requested_by=user,
        reason=reason,
        state=states.PENDING_APPROVAL,
    )


def after_failure(deployment: Deployment) -> str:
    """The follow-up a failure owes the cluster: an automatic rollback where the environment asks
    for one, unless the failure never reached the cluster or was itself a rollback."""
    wanted = deployment.environment.auto_rollback and not deployment.is_rollback and deployment.started_at is not None
    return Deployment.AUTO_ROLLBACK if wanted else ""
