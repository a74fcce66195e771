"""The small widgets every list repeats (state badge, progress bar, availability, time ago) as
tags written in Python: `{% badge deployment %}`, `{% progress deployment %}`, `{% downtime
deployment %}`, `{% when at %}`.

They were includes; a list of fifty rows rendered each include fifty times through the template
engine (a new context, a lookup per variable, a filter call per pipe), which was most of the time
a history or dashboard page took. Here each is one `format_html`, with the same markup.
Registered as a template builtin (settings.TEMPLATES), so no `{% load %}` is needed.
"""

from datetime import date, datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.template.defaultfilters import floatformat
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def badge(deployment) -> str:
    tone, state, label = deployment.tone, deployment.state, deployment.state_label
    return format_html('<span class="badge tone-{}" data-state="{}">{}</span>', tone, state, label)


@register.simple_tag
def when(at) -> str:
    """`<time>` with the machine-readable moment, the full local time on hover and "3 hours ago"."""
    if not isinstance(at, date):
        return ""
    local = timezone.localtime(at) if isinstance(at, datetime) and timezone.is_aware(at) else at
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        dateformat.format(local, "Y-m-d H:i:s T"),
        naturaltime(at),
    )


@register.simple_tag
def progress(deployment) -> str:
    p = deployment.progress if isinstance(deployment.progress, dict) else {}
    if not p.get("desired"):
        return ""
    updated, desired, available = p.get("updated", ""), p["desired"], p.get("available", "")
    return format_html(
        '<progress class="bar tone-{}" max="{}" value="{}" title="{} of {} updated, {} available">{}/{}</progress>',
        deployment.tone,
        desired,
        updated or 0,
        updated,
        desired,
        available,
        updated,
        desired,
    )


@register.simple_tag
def downtime(deployment) -> str:
    """Did availability drop below the minimum during the rollout (unknown until it was checked)."""
    dt = deployment.downtime if isinstance(deployment.downtime, dict) else {}
    if not dt.get("checked"):
        return mark_safe('<span class="muted" data-downtime="unknown">—</span>')
    desired = (deployment.progress or {}).get("desired") if isinstance(deployment.progress, dict) else None
    of = format_html(" of {}", desired) if desired else ""
    if dt.get("dropped"):
        return format_html(
            '<span class="badge tone-bad" data-downtime="dropped">availability dropped {}s: down to {}{} available '
            "(minimum {})</span>",
            floatformat(dt.get("seconds", ""), 0),
            dt.get("min_available", ""),
            of,
            dt.get("min_required", ""),
        )
    return format_html(
        '<span class="badge tone-ok" data-downtime="none">no downtime: never below {}{} available (minimum {})</span>',
        dt.get("min_available", ""),
        of,
        dt.get("min_required", ""),
    )
