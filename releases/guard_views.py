"""Freezes and locks for release managers, outside the admin; and the environment page they live on."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from clusters.models import Environment, FreezeWindow, Lock
from releases import board, catalog, guards, rules
from releases.forms import FreezeForm, LockForm
from releases.models import Service
from releases.views import refused


def _back(request, fallback: str = "guards"):
    """Back to the page the form was on (`next`, same site only), else the freezes and locks page."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback)


def _problems(form) -> str:
    return " ".join(
        f"{form.fields[name].label or name.title()}: {e}" if name != "__all__" else str(e)
        for name, errors in form.errors.items()
        for e in errors
    )


def overview(request):
    """Every lock in force and every freeze not over yet, with the forms to add them."""
    environments = catalog.in_use()
    now = timezone.now()
    held = guards.in_force(environments, now)
    lockable = [e for e in environments if rules.can_lock(request.user, e)]
    return render(
        request,
        "releases/guards.html",
        {
            "rows": [(env, held[env.pk], env in lockable) for env in environments],
            "lockable": lockable,
            "lock_form": LockForm(),
            "freeze_form": FreezeForm(),
            "services": list(Service.objects.all()),
            "now": now,
        },
    )


def _add(request, form_class, add, failure: str, said):
    """The posted form's `add(user, **data)`, then back with `said(row, data)`; a form with
    problems answers 400 with `failure` and what they are."""
    form = form_class(request.POST)
    if not form.is_valid():
        return refused(request, f"{failure} {_problems(form)}", status=400)
    row = add(request.user, **form.cleaned_data)
    messages.success(request, said(row, form.cleaned_data))
    return _back(request)


def _locked(lock, data) -> str:
    scope = f"{data['service'].name} in {lock.environment.name}" if data["service"] else lock.environment.name
    return f"{scope} is locked: nothing deploys there until the lock is released."


@require_POST
def add_lock(request):
    return _add(request, LockForm, guards.lock, "The lock was not added.", _locked)


def release_lock(request, pk):
    """GET: what releasing means, and a button. POST: release it."""
    lock = get_object_or_404(Lock.objects.select_related("environment", "locked_by", "released_by"), pk=pk)
    if request.method == "POST":
        guards.unlock(request.user, lock)
        messages.success(request, f"Lock on {lock.environment.name} released.")
        return _back(request)
    if request.method != "GET":
        return refused(request, "Release a lock with the button on its confirmation page.", status=405)
    return render(
        request,
        "releases/lock_release.html",
        {"lock": lock, "verdict": rules.can_unlock(request.user, lock), "next": request.GET.get("next", "")},
    )


def _scheduled(freeze, data) -> str:
    return f"Freeze of {freeze.environment.name} scheduled."


@require_POST
def add_freeze(request):
    return _add(request, FreezeForm, guards.schedule_freeze, "The freeze was not scheduled.", _scheduled)


def edit_freeze(request, pk):
    freeze = get_object_or_404(FreezeWindow.objects.select_related("environment", "created_by"), pk=pk)
    verdict = rules.can_lock(request.user, freeze.environment)
    form = FreezeForm(
        request.POST or None,
        initial={
            "environment": freeze.environment.slug,
            "starts_at": timezone.localtime(freeze.starts_at),
            "ends_at": timezone.localtime(freeze.ends_at),
            "reason": freeze.reason,
        },
    )
    if request.method == "POST":
        if not form.is_valid():
            return render(
                request, "releases/freeze_edit.html", {"freeze": freeze, "form": form, "verdict": verdict}, 400
            )
        data = form.cleaned_data
        guards.change_freeze(
            request.user, freeze, starts_at=data["starts_at"], ends_at=data["ends_at"], reason=data["reason"]
        )
        messages.success(request, f"Freeze of {freeze.environment.name} changed.")
        return redirect("guards")
    return render(request, "releases/freeze_edit.html", {"freeze": freeze, "form": form, "verdict": verdict})


@require_POST
def delete_freeze(request, pk):
    freeze = get_object_or_404(FreezeWindow.objects.select_related("environment"), pk=pk)
    guards.remove_freeze(request.user, freeze)
    messages.success(request, f"Freeze of {freeze.environment.name} removed.")
    return redirect("guards")


def environment_detail(request, slug):
    """One environment: what each service runs there, its locks and freezes, its recent history."""
    environment = get_object_or_404(Environment, slug=slug)
    services = list(Service.objects.all())
    row = board.matrix_for_environment(services, environment)
    held = guards.in_force([environment])[environment.pk]
    return render(
        request,
        "releases/environment.html",
        {
            "environment": environment,
            "cells": row,
            "guards": held,
            "may_lock": rules.can_lock(request.user, environment),
            "lock_form": LockForm(initial={"environment": environment.slug}),
            "freeze_form": FreezeForm(initial={"environment": environment.slug}),
            "services": services,
            "recent": environment.deployments.for_history().with_rollbacks().order_by("-id")[:20],
        },
    )
