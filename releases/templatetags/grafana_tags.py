"""Grafana panels on the deployment and service pages (see releases.grafana_panels)."""

from django import template

from clusters.models import Environment
from releases import grafana_panels

register = template.Library()


@register.inclusion_tag("includes/grafana_panels.html")
def grafana_deployment_panels(deployment):
    """The service's panels over the rollout window, refreshing while the deployment is active."""
    panels = grafana_panels.for_deployment(deployment)
    live = bool(panels) and grafana_panels.rollout_window(deployment)[1] == "now"
    return {"panels": panels, "live": live, "environment": deployment.environment, "choices": []}


@register.inclusion_tag("includes/grafana_panels.html", takes_context=True)
def grafana_service_panels(context, service):
    """The last six hours of the service's panels in one environment: `?grafana_env=<slug>`,
    production by default."""
    if not grafana_panels.enabled(service):
        return {"panels": []}
    environments = list(Environment.objects.order_by("position", "slug"))
    request = context.get("request")
    wanted = request.GET.get("grafana_env", "") if request is not None else ""
    environment = _choose(environments, wanted)
    return {
        "panels": grafana_panels.for_service(service, environment),
        "live": False,
        "environment": environment,
        "choices": environments if len(environments) > 1 else [],
        "unknown": wanted if wanted and (environment is None or environment.slug != wanted) else "",
    }


def _choose(environments, wanted: str):
    by_slug = {e.slug: e for e in environments}
    if wanted in by_slug:
        return by_slug[wanted]
    production = [e for e in environments if e.is_production]
    if production:
        return production[0]
    return environments[-1] if environments else None
