"""Pages and buttons for Jenkins builds: start one, watch it, stop it; stop a deploy job."""

from django import forms
from django.contrib import messages
from django.core.validators import RegexValidator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from plumbing.integrations import IntegrationError, github
from releases import builds, changelog, deploy_jobs, rules
from releases.models import Build, Deployment, Service
from releases.views import refused

LOG_PAGE = 5000


class BuildForm(forms.Form):
    ref = forms.CharField(
        required=False,
        max_length=100,
        validators=[RegexValidator(r"^[A-Za-z0-9._/-]+$", "A git ref has letters, digits and . _ / - only.")],
    )
    version = forms.CharField(
        required=False,
        max_length=100,
        validators=[RegexValidator(builds.VERSION_RE, "A version has letters, digits and . _ + - only.")],
    )


@require_POST
def start(request, slug):
    service = get_object_or_404(Service, slug=slug)
    form = BuildForm(request.POST)
    if not form.is_valid():
        problems = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return refused(request, f"The build request is not valid: {problems}", status=400)
    allowed = rules.can_build(request.user, service)
    if not allowed:
        return refused(request, allowed.message)
    ref = form.cleaned_data["ref"] or "main"
    try:
        commit = _resolve(service, ref)
    except IntegrationError as error:
        if error.permanent:
            return refused(request, f"GitHub knows no commit “{ref}” in {service.github_repo}: {error}", status=400)
        message = f"GitHub did not say which commit “{ref}” is ({error}). Try again, or give a full commit sha."
        return refused(request, message, status=503)
    build = builds.request_build(request.user, service, ref=ref, version=form.cleaned_data["version"], commit=commit)
    messages.success(request, f"Build of {service.name} requested.")
    return redirect("build", build.pk)


def _resolve(service, ref: str) -> str:
    """The commit `ref` names now, so the release says which code it is (changelogs, GitHub
    statuses). Without GitHub configured for the service, Jenkins' own report has to do."""
    if not changelog.enabled(service):
        return ""
    return github.get_commit(service.github_repo, ref).sha


def build_detail(request, pk):
    build = get_object_or_404(Build.objects.select_related("service", "triggered_by", "release"), pk=pk)
    events = list(build.events.order_by("-seq")[:LOG_PAGE])
    events.reverse()
    return render(
        request,
        "releases/build.html",
        {
            "build": build,
            "events": events,
            # The timeline numbers its steps 1, 2, 3…: console lines go to the log, not in between.
            "steps": [e for e in events if e.kind != "log"],
            "truncated": bool(events) and events[0].seq > 1,
            "may_abort": rules.can_abort_build(request.user, build),
        },
    )


@require_POST
def abort(request, pk):
    build = get_object_or_404(Build.objects.select_related("service"), pk=pk)
    builds.abort_build(request.user, build)
    messages.success(request, f"Asked Jenkins to stop {build}.")
    return redirect("build", build.pk)


@require_POST
def abort_deploy_job(request, pk):
    deployment = get_object_or_404(Deployment.objects.select_related("environment"), pk=pk)
    deploy_jobs.abort(request.user, deployment)
    messages.success(request, "Asked Jenkins to stop the deploy job.")
    return redirect(deployment)
