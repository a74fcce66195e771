"""Jenkins widgets: the Build button with recent builds (service page), the deploy job panel."""

from django import template

from releases import builds
from releases.models import Build

register = template.Library()

TONES = {
    Build.QUEUED: "wait",
    Build.RUNNING: "info",
    Build.SUCCEEDED: "ok",
    Build.FAILED: "bad",
    Build.ABORTED: "warn",
    Build.CANCELLED: "muted",
}


@register.filter
def build_tone(build) -> str:
    return TONES.get(build.state, "muted")


@register.inclusion_tag("includes/jenkins_builds.html", takes_context=True)
def jenkins_build_panel(context, service):
    """The Build button (for deployers and staff) and the service's last builds."""
    user = context["request"].user
    return {
        "service": service,
        "may_build": builds.may_build(user, service),
        "recent": list(service.builds.select_related("release")[:5]),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("includes/jenkins_deploy_job.html", takes_context=True)
def jenkins_deploy_job_panel(context, deployment):
    """The deploy job's link and an Abort button while it runs (its log is in the timeline)."""
    environment = deployment.environment
    if environment.deploy_via != environment.JENKINS:
        return {"show": False}
    return {
        "show": True,
        "deployment": deployment,
        "job": environment.jenkins_deploy_job,
        "may_abort": builds.may_abort_deploy_job(context["request"].user, deployment),
        "csrf_token": context.get("csrf_token"),
    }
