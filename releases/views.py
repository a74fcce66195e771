from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from clusters.models import Environment
from releases import board, flows, rules, states
from releases.forms import CancelForm, DecisionForm, DeployForm, HistoryFilter, RollbackForm
from releases.models import Deployment, Release, Service


def refused(request, message: str, status: int = 403):
    return render(request, "refused.html", {"message": message}, status=status)


def service_detail(request, slug):
    service = get_object_or_404(Service, slug=slug)
    releases = list(service.releases.select_related("created_by")[:50])
    environments = list(Environment.objects.all())
    reached = board.promotion(service, releases)
    release_rows = [(r, [(e, e.pk in reached[r.pk]) for e in environments]) for r in releases]
    return render(
        request,
        "releases/service.html",
        {
            "service": service,
            "release_rows": release_rows,
            "recent": service.deployments.for_history().order_by("-id")[:10],
            "cells": board.dashboard_row(service, environments),
        },
    )


def release_detail(request, pk, form=None, status=200):
    release = get_object_or_404(Release.objects.select_related("service", "created_by"), pk=pk)
    targets = rules.can_request_each(
        request.user, release, Environment.objects.select_related("deployer_group", "approver_group")
    )
    return render(
        request,
        "releases/release.html",
        {"release": release, "targets": targets, "form": form or DeployForm()},
        status=status,
    )


@require_POST
def request_deploy(request, pk):
    release = get_object_or_404(Release.objects.select_related("service"), pk=pk)
    form = DeployForm(request.POST)
    if not form.is_valid():
        return release_detail(request, pk, form=form, status=400)
    try:
        deployment = flows.request_deployment(
            request.user,
            release,
            form.cleaned_data["environment"],
            override_reason=form.cleaned_data["override_reason"],
        )
    except rules.Refused as refusal:
        return refused(request, str(refusal))
    messages.success(request, f"Deployment #{deployment.pk} requested.")
    return redirect(deployment)


def deployment_detail(request, pk, decision_form=None, status=200):
    deployment = get_object_or_404(Deployment.objects.for_history().select_related("previous_release"), pk=pk)
    if not rules.can_view(request.user, deployment):
        return refused(request, "You may not view this deployment.")
    events = list(deployment.events.select_related("actor").order_by("-seq")[:500])
    events.reverse()
    user = request.user
    return render(
        request,
        "releases/deployment.html",
        {
            "deployment": deployment,
            "approvals": deployment.approvals.select_related("user"),
            "events": events,
            "decision_form": decision_form or DecisionForm(),
            "may_approve": rules.can_decide(user, deployment, "approve"),
            "may_reject": rules.can_decide(user, deployment, "reject"),
            "may_cancel": rules.can_cancel(user, deployment),
            "rollback_to": _rollback_to(user, deployment),
            "approved_count": rules.approvals_count(deployment),
        },
        status=status,
    )


def _rollback_to(user, deployment):
    """Rollback acts on what runs now, so only the newest deployment of its pair offers it."""
    if deployment.state not in states.FINAL or not rules.is_deployer(user, deployment.environment):
        return None
    latest = Deployment.objects.filter(service=deployment.service, environment=deployment.environment).order_by("-id")
    if latest.values_list("pk", flat=True).first() != deployment.pk:
        return None
    return flows.rollback_target(deployment, flows.last_succeeded(deployment.service, deployment.environment))


@require_POST
def decide(request, pk):
    deployment = get_object_or_404(Deployment.objects.select_related("environment"), pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        if deployment.state != states.PENDING_APPROVAL:
            # The form is not shown any more, so its errors would go unseen: say why instead.
            return refused(request, rules.can_decide(request.user, deployment, "approve").message)
        return deployment_detail(request, pk, decision_form=form, status=400)
    try:
        flows.decide(request.user, deployment, form.cleaned_data["decision"], form.cleaned_data["comment"])
    except rules.Refused as refusal:
        return refused(request, str(refusal))
    messages.success(request, "Your decision is recorded.")
    return redirect(deployment)


@require_POST
def cancel(request, pk):
    deployment = get_object_or_404(Deployment.objects.select_related("environment"), pk=pk)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return refused(request, "The reason is too long (500 characters at most).", status=400)
    try:
        flows.cancel(request.user, deployment, form.cleaned_data["reason"])
    except rules.Refused as refusal:
        return refused(request, str(refusal))
    messages.success(request, f"Deployment #{deployment.pk} cancelled.")
    return redirect(deployment)


@require_POST
def rollback(request, slug, environment):
    service = get_object_or_404(Service, slug=slug)
    env = get_object_or_404(Environment, slug=environment)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        return refused(request, "The reason is too long (500 characters at most).", status=400)
    try:
        deployment = flows.rollback(request.user, service, env, override_reason=form.cleaned_data["override_reason"])
    except rules.Refused as refusal:
        return refused(request, str(refusal))
    messages.success(request, f"Rolling {service.name} back in {env.name}.")
    return redirect(deployment)


def approvals(request):
    return render(request, "releases/approvals.html", {"waiting": board.waiting_for(request.user)[:200]})


def _day_start(day, days=0):
    """Midnight (in the current time zone) starting `day` + `days`, or None without a day."""
    if day is None:
        return None
    try:
        day += timedelta(days=days)
    except OverflowError:  # until=9999-12-31: no upper bound
        return None
    return timezone.make_aware(datetime.combine(day, time.min))


def history(request):
    form = HistoryFilter(request.GET or None)
    deployments = Deployment.objects.for_history().order_by("-id")
    if form.is_bound and not form.is_valid():
        return render(request, "releases/history.html", {"form": form, "page": []}, status=400)
    data = form.cleaned_data if form.is_bound else {}
    filters = {
        "service": data.get("service"),
        "environment": data.get("environment"),
        "state": data.get("state") or None,
        "requested_by": data.get("requester"),
        # Bounds on created_at itself, not on its date: a range the deployment_created index can serve.
        "created_at__gte": _day_start(data.get("since")),
        "created_at__lt": _day_start(data.get("until"), days=1),
        "id__lt": data.get("before") or None,
    }
    deployments = deployments.filter(**{k: v for k, v in filters.items() if v is not None})
    size = settings.HISTORY_PAGE_SIZE
    page = list(deployments[: size + 1])
    more = len(page) > size
    page = page[:size]
    query = request.GET.copy()
    query.pop("before", None)
    first_query = query.urlencode() if data.get("before") else None
    next_query = None
    if more:
        query["before"] = page[-1].pk
        next_query = query.urlencode()
    return render(
        request,
        "releases/history.html",
        {
            "form": form,
            "page": page,
            "next_query": next_query,
            "first_query": first_query,
        },
    )
