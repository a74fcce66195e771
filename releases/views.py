from collections import namedtuple
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from clusters.models import Environment, Workload
from plumbing import fragments
from releases import (
    board,
    catalog,
    changelog,
    check_charts,
    flows,
    grafana_panels,
    guards,
    preflight,
    reporting,
    rules,
    states,
)
from releases.forms import CancelForm, DecisionForm, DeployForm, HistoryFilter, RollbackForm
from releases.models import Approval, Deployment, Release, Service
from releases.paging import keyset_page
from releases.templatetags import widgets

# A replay reads at most this many events (the page itself lists the last 500).
REPLAY_EVENTS = 5000


def refused(request, message: str, status: int = 403):
    return render(request, "refused.html", {"message": message}, status=status)


@dataclass
class RollbackOffer:
    """A rollback button: where it goes, and whether this person may press it (and why not)."""

    environment: Environment
    target: Release
    verdict: rules.Verdict

    @property
    def confirm(self) -> bool:
        """Production asks for a confirmation and a reason first."""
        return self.environment.is_production


def _rollback_offer(user, service, environment, plan, seen=None) -> RollbackOffer | None:
    if not plan:
        return None
    verdict = rules.can_rollback(user, service, environment, reason=None, plan=plan, seen=seen)
    return RollbackOffer(environment, plan.target, verdict)


# What history pages and parts show: deployments, and the names of services, environments and people.
HISTORY_SCOPES = (fragments.DEPLOYMENT, fragments.CATALOG)
# What a service's cells show: its deployments, what the cluster runs and the catalog.
CELL_SCOPES = (fragments.DEPLOYMENT, fragments.WORKLOAD, fragments.CATALOG)
# A service's builds, and the releases they made.
BUILD_SCOPES = (fragments.BUILD, fragments.CATALOG)


def service_detail(request, slug):
    service = catalog.service(slug)
    if service is None:
        raise Http404("No such service.")
    everywhere = catalog.environments()
    environments = catalog.in_use(everywhere)

    def service_history() -> str:
        releases = list(service.releases.select_related("created_by")[:50])
        reached = board.promotion(service, releases)
        rows = [(r, [(e, e.pk in reached[r.pk]) for e in environments]) for r in releases]
        recent = service.deployments.for_history().with_rollbacks().order_by("-id")[:10]
        return render_to_string("includes/service_history.html", {"release_rows": rows, "recent": recent})

    # The releases and recent deployments are the same for everyone: kept rendered until a
    # deployment or the catalog changes (or the minute of "3 minutes ago" turns).
    parts = [service.pk, [e.pk for e in environments]]
    history = fragments.html("service-history", HISTORY_SCOPES, parts, service_history)

    # What runs where, each environment's latest deployment, and what a rollback there would
    # undo and restore are the same for everyone too: kept under the same kind of tokens.
    def cells_and_plans() -> list:
        return [(cell, cell.rollback_plan) for cell in board.dashboard_row(service, environments)]

    kept = fragments.cached("service-cells", CELL_SCOPES, parts, cells_and_plans)
    held = guards.in_force(environments)
    cells = []
    for cell, plan in kept:
        cell.locks = held[cell.environment.pk].locks_for(service.slug)
        # A plan is made only when the pair's newest deployment is over (Cell.rollback_plan), and
        # a pair has one active deployment at most (the newest): nothing is active there.
        seen = (cell.locks, None)
        cells.append((cell, _rollback_offer(request.user, service, cell.environment, plan, seen)))
    return render(
        request,
        "releases/service.html",
        {
            "service": service,
            "service_history": history,
            "cells": cells,
            "lockable": [e for e in environments if rules.can_lock(request.user, e)],
            "may_build": rules.can_build(request.user, service, everywhere),
            "recent_builds": fragments.cached(
                "recent-builds", BUILD_SCOPES, [service.pk], lambda: list(service.builds.select_related("release")[:5])
            ),
            "pending": changelog.not_in_production(service),
            "grafana": _service_panels(request, service, environments),
        },
    )


def _service_panels(request, service, environments) -> dict:
    """The last six hours of the service's panels in one environment: `?grafana_env=<slug>`,
    production by default."""
    if not grafana_panels.enabled(service) or not environments:
        return {"panels": []}
    wanted = request.GET.get("grafana_env", "")
    by_slug = {e.slug: e for e in environments}
    production = [e for e in environments if e.is_production]
    environment = by_slug.get(wanted) or (production[0] if production else environments[-1])
    return {
        "panels": grafana_panels.for_service(service, environment),
        "live": False,
        "environment": environment,
        "choices": environments if len(environments) > 1 else [],
        "unknown": wanted if wanted and wanted not in by_slug else "",
    }


def _kept_deployment_reads(name, parts, read):
    """What the release page reads of deployments, kept until a deployment or the catalog changes."""
    return fragments.cached(name, HISTORY_SCOPES, parts, read)


def release_detail(request, pk, form=None, status=200):
    release = catalog.of(get_object_or_404(Release, pk=pk))
    everywhere = catalog.environments()
    environments = catalog.in_use(everywhere)
    held = guards.in_force(environments)
    verdicts = rules.can_request_each(
        request.user, release, environments, held=held, path=everywhere, keep=_kept_deployment_reads
    )
    name = release.service.k8s_deployment
    gone = fragments.cached(
        "gone-workloads",
        [fragments.WORKLOAD],
        [name],
        lambda: set(Workload.objects.filter(name=name, exists=False).values_list("environment_id", flat=True)),
    )
    for env, verdict in verdicts:
        if env.pk in gone:  # the watcher saw the Deployment go (or never there): say what to create
            verdict.refuse(preflight.what_to_create(release.service, env))
    return render(
        request,
        "releases/release.html",
        {
            "release": release,
            "targets": [(env, verdict, held[env.pk]) for env, verdict in verdicts],
            "form": form or DeployForm(),
            "changelog_targets": changelog.for_release(release),
        },
        status=status,
    )


@require_POST
def request_deploy(request, pk):
    release = get_object_or_404(Release.objects.select_related("service"), pk=pk)
    form = DeployForm(request.POST)
    if not form.is_valid():
        return release_detail(request, pk, form=form, status=400)
    environment, override = form.cleaned_data["environment"], form.cleaned_data["override_reason"]
    preflight.refuse_a_first_deploy(request.user, release, environment, override)
    deployment = flows.request_deployment(request.user, release, environment, override_reason=override)
    messages.success(request, f"Deployment #{deployment.pk} requested.")
    return redirect(deployment)


# What the page's timeline shows of each event: columns, not model instances (a page lists up
# to 500), and not its data (JSON the page does not read).
TimelineItem = namedtuple("TimelineItem", "seq kind message created_at actor")
TIMELINE_FIELDS = ("seq", "kind", "message", "created_at", "actor__username")


def deployment_detail(request, pk, decision_form=None, status=200):
    deployment = catalog.of(get_object_or_404(Deployment, pk=pk))
    if not rules.can_view(request.user, deployment):
        return refused(request, "You may not view this deployment.")

    def timeline() -> str:
        newest = deployment.events.order_by("-seq").values_list(*TIMELINE_FIELDS)[:500]
        return widgets.timeline_items([TimelineItem(*row) for row in list(newest)[::-1]])

    # Events are only ever appended, each moving `last_seq`: the timeline up to a `last_seq` never
    # changes (but for an actor's renamed username: the catalog scope).
    parts = [deployment.pk, deployment.last_seq]
    events = fragments.html("timeline", [fragments.CATALOG], parts, timeline, per_minute=False)
    user = request.user
    decisions = fragments.cached(
        "approvals", HISTORY_SCOPES, [deployment.pk], lambda: list(deployment.approvals.select_related("user"))
    )
    start, end, _ = grafana_panels.rollout_window(deployment)
    return render(
        request,
        "releases/deployment.html",
        {
            "deployment": deployment,
            "approvals": decisions,
            "events": events,
            "decision_form": decision_form or DecisionForm(),
            "may_approve": rules.can_decide(user, deployment, "approve"),
            "may_reject": rules.can_decide(user, deployment, "reject"),
            "may_cancel": rules.can_cancel(user, deployment),
            "rollback": _deployment_rollback(user, deployment),
            "approved_count": rules.approvals_count(deployment, decisions),
            "runs_now": _runs_now(deployment),
            "changelog": changelog.for_deployment(deployment),
            "grafana": {
                "panels": grafana_panels.for_deployment(deployment),
                "live": end == "now",
                "environment": deployment.environment,
            },
            "deploy_job": _deploy_job(user, deployment),
            "github_report": reporting.summary(deployment),
            "replayable": deployment.state in states.FINAL and deployment.started_at is not None,
            "checks": check_charts.panel(deployment),
        },
        status=status,
    )


def _deployment_rollback(user, deployment) -> RollbackOffer | None:
    """Rollback acts on what runs now, so only the newest deployment of its pair offers it, and
    only once it changed something: a rejected deployment, or one cancelled before it started,
    left the cluster as it was."""
    if deployment.state not in states.FINAL or _changed_nothing(deployment):
        return None
    service, environment = deployment.service, deployment.environment

    def plan_when_idle():
        if Deployment.objects.of_pair(service, environment).active().exists():
            return None
        return Deployment.objects.rollback_plan(service, environment)

    # Whether the pair is idle and what a rollback would undo and restore are the same for
    # everyone: kept until a deployment or the catalog changes.
    plan = fragments.cached("rollback-plan", HISTORY_SCOPES, [service.pk, environment.pk], plan_when_idle)
    if plan is None or plan.undoes != deployment:
        return None
    locks = guards.in_force([environment])[environment.pk].locks_for(service.slug)
    return _rollback_offer(user, service, environment, plan, seen=(locks, None))


def _changed_nothing(deployment) -> bool:
    return deployment.state == states.REJECTED or (
        deployment.state == states.CANCELLED and deployment.started_at is None
    )


def _runs_now(deployment) -> dict | None:
    """Before a deployment touches the cluster, what runs there now (as the watcher last saw it)."""
    if deployment.started_at is not None:
        return None
    workload = Workload.objects.filter(
        environment=deployment.environment, name=deployment.service.k8s_deployment
    ).first()
    previous = deployment.previous_release
    return {
        "workload": workload,
        "release": previous if previous and workload and previous.image == workload.image else None,
        "progress": (workload.progress or {}) if workload else {},
    }


def _deploy_job(user, deployment) -> dict | None:
    environment = deployment.environment
    if environment.deploy_via != environment.JENKINS:
        return None
    return {"job": environment.jenkins_deploy_job, "may_abort": rules.can_abort_deploy_job(user, deployment)}


def deployment_events(request, pk):
    """The deployment's events as JSON, oldest first (the page's replay reads them)."""
    deployment = get_object_or_404(Deployment, pk=pk)
    if not rules.can_view(request.user, deployment):
        return JsonResponse({"error": "You may not view this deployment."}, status=403)
    events = deployment.events.select_related("actor").order_by("seq")[:REPLAY_EVENTS]
    return JsonResponse({"deployment": deployment.pk, "events": [e.as_message() for e in events]})


@require_POST
def decide(request, pk):
    deployment = get_object_or_404(Deployment.objects.select_related("environment"), pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        if deployment.state != states.PENDING_APPROVAL:
            # The form is not shown any more, so its errors would go unseen: say why instead.
            return refused(request, rules.can_decide(request.user, deployment, "approve").message)
        return deployment_detail(request, pk, decision_form=form, status=400)
    flows.decide(request.user, deployment, form.cleaned_data["decision"], form.cleaned_data["comment"])
    messages.success(request, "Your decision is recorded.")
    return redirect(deployment)


@require_POST
def cancel(request, pk):
    deployment = get_object_or_404(Deployment.objects.select_related("environment"), pk=pk)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return refused(request, "The reason is too long (500 characters at most).", status=400)
    flows.cancel(request.user, deployment, form.cleaned_data["reason"])
    messages.success(request, f"Deployment #{deployment.pk} cancelled.")
    return redirect(deployment)


def rollback(request, slug, environment):
    """GET: the confirmation (production asks for a reason). POST: roll back."""
    service = get_object_or_404(Service, slug=slug)
    env = get_object_or_404(Environment, slug=environment)
    if request.method == "POST":
        return _roll_back(request, service, env)
    if request.method != "GET":
        return refused(request, "Use the rollback button on the service or deployment page.", status=405)
    cell = board.dashboard_row(service, [env])[0]
    offer = _rollback_offer(request.user, service, env, cell.rollback_plan)
    if offer is None:
        return refused(request, f"There is no earlier release of {service.name} in {env.name} to go back to.", 409)
    return render(
        request,
        "releases/rollback_confirm.html",
        {"service": service, "environment": env, "offer": offer, "running": cell.running, "form": RollbackForm()},
    )


def _roll_back(request, service, env):
    form = RollbackForm(request.POST)
    if not form.is_valid():
        problems = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return refused(request, problems, status=400)
    reason = form.cleaned_data["reason"]
    if env.is_production and not reason:
        return refused(
            request, f"{env.name} is production: say why you roll back (the reason goes to the timeline).", 400
        )
    deployment = flows.rollback(
        request.user, service, env, reason=reason, override_reason=form.cleaned_data["override_reason"]
    )
    messages.success(request, f"Rolling {service.name} back in {env.name} to {deployment.release.version}.")
    return redirect(deployment)


def approvals(request):
    user = request.user

    def waiting_list() -> str:
        waiting = list(board.waiting_for(user)[:200])
        # Counted apart: grouping the page's joined rows by every column to count them cost
        # PostgreSQL more to plan than this second query costs to run.
        approved = dict(
            Approval.objects.filter(deployment__in=waiting, decision=Approval.APPROVE)
            .values_list("deployment_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        for deployment in waiting:
            deployment.approved = approved.get(deployment.pk, 0)
        return render_to_string("includes/waiting_list.html", {"waiting": waiting})

    # What waits for this person changes with deployments and approvals (the deployment scope),
    # environments' approver groups (the catalog) and the person's groups (part of the key).
    parts = [user.pk, sorted(rules.group_ids(user))]
    return render(
        request,
        "releases/approvals.html",
        {"waiting_list": fragments.html("waiting", HISTORY_SCOPES, parts, waiting_list)},
    )


def waiting(request):
    """What waits for this person's approval, for the header badge: {"count", "ids"}."""
    ids = list(board.waiting_for(request.user).values_list("pk", flat=True)[:500])
    return JsonResponse({"count": len(ids), "ids": ids})


def history(request):
    """A page of deployments, newest first, filtered; the same for everyone who asks for the same
    page, so it is kept rendered until a deployment changes (or the minute of "3 minutes ago")."""
    form = HistoryFilter(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(request, "releases/history.html", {"form": form, "page": []}, status=400)
    data = form.cleaned_data if form.is_bound else {}

    def body() -> str:
        deployments = (
            Deployment.objects.for_history()
            .with_rollbacks()
            .order_by("-id")
            .matching(
                **{name: data.get(name) for name in ("service", "environment", "state", "requester", "since", "until")}
            )
        )
        page = keyset_page(request, deployments, settings.HISTORY_PAGE_SIZE, data.get("before"))
        context = {"form": form, "page": page.rows, "next_query": page.next_query, "first_query": page.first_query}
        return render_to_string("includes/history_body.html", context)

    html = fragments.html("history", HISTORY_SCOPES, [sorted(request.GET.lists())], body)
    return render(request, "releases/history.html", {"body": html})
