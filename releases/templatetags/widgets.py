"""The small widgets every list repeats (state badge, progress bar, availability, time ago) as
tags written in Python: `{% badge deployment %}`, `{% progress deployment %}`, `{% downtime
deployment %}`, `{% when at %}`, and a timeline's items (`{% timeline_items events %}`).

They were includes; a list of fifty rows rendered each include fifty times through the template
engine (a new context, a lookup per variable, a filter call per pipe), which was most of the time
a history or dashboard page took. Here each is one `format_html`, with the same markup.
Registered as a template builtin (settings.TEMPLATES), so no `{% load %}` is needed.
"""

from datetime import date, datetime
from html import escape

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat, truncatechars
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
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
    if isinstance(at, datetime) and timezone.is_aware(at):
        local = timezone.localtime(at)
        title = f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()  # the date filter's "Y-m-d H:i:s T"
    else:
        local, title = at, dateformat.format(at, "Y-m-d H:i:s T")
    return format_html(
        '<time datetime="{}" title="{}" data-relative>{}</time>', local.isoformat(), title, naturaltime(at)
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


@register.simple_tag
def timeline_items(events) -> str:
    """The `<li>`s of a deployment's timeline (the page shows up to 500 of them; `actor` is a
    username or None), escaped with
    the standard library's html.escape as Django's escape is, without its lazy-string wrapper
    around every value."""
    items, previous = [], None
    for event in events:
        when = timezone.localtime(event.created_at).strftime("%H:%M:%S") if event.created_at else ""
        by = f' title="by {escape(event.actor)}"' if event.actor and event.kind != "log" else ""
        kind = escape(event.kind)
        # A rollout status the next event repeats is greyed out (timeline.js does the same live).
        repeat = " repeat" if event.kind == "progress" and event.message == previous else ""
        previous = event.message
        items.append(
            f'<li class="kind-{kind}{repeat}" data-seq="{event.seq}"><span class="seq">{event.seq}</span>'
            f'<span class="when">{when}</span><span class="msg"{by}>{escape(event.message)}</span></li>'
        )
    return mark_safe("\n".join(items))  # noqa: S308 (every value above is escaped or a number)


@register.simple_tag
def matrix_cell(cell) -> str:
    """A dashboard cell (`board.Cell`): what runs, the latest deployment, its progress and age,
    locks on the service and drift. The board has a cell per service and environment, so this
    markup is written here once rather than interpreted by the template engine ninety times.
    dashboard.js finds its parts by `data-role`."""
    service, latest = cell.service, cell.latest
    parts = [
        format_html(
            '<td class="cell" data-service="{}" data-environment="{}" data-workload="{}">\n'
            '<div class="version" data-role="version">{}</div>\n',
            service.slug,
            cell.environment.slug,
            service.k8s_deployment,
            cell.version or "—",
        )
    ]
    parts.append(_cell_state(cell))
    active = latest is not None and latest.is_active
    parts.append(format_html('<div data-role="progress">{}</div>\n', progress(latest) if active else ""))
    age = when(latest.created_at) if latest else ""
    parts.append(format_html('<div class="meta" data-role="when">{}</div>\n', age))
    parts.extend(_cell_lock(lock) for lock in cell.locks if lock.service_slug)
    parts.append(
        format_html(
            '<div class="drift" data-role="drift"{}>⚠ drift: cluster runs <span class="mono" data-role="image">{}'
            "</span></div>\n</td>",
            "" if cell.drifted else mark_safe(" hidden"),
            cell.workload.image if cell.workload else "",
        )
    )
    return mark_safe("".join(parts))  # noqa: S308 (joins format_html results only)


def _cell_state(cell) -> str:
    latest = cell.latest
    if latest is None:
        return mark_safe('<div data-role="state"><span class="meta">never deployed</span></div>\n')
    running = cell.running.release_id if cell.running else None
    other = format_html('<span class="mono muted">{}</span>', latest.release.version)
    return format_html(
        '<div data-role="state"><a href="{}">{}</a>\n{}</div>\n',
        latest.get_absolute_url(),
        badge(latest),
        other if latest.release_id != running else "",
    )


def _cell_lock(lock) -> str:
    until = format_html(" until {}", date_filter(lock.until, "M j H:i")) if lock.until else ""
    return format_html(
        '<div class="guard lock" data-role="lock" title="{}"><span class="badge tone-bad">locked</span> by {}{}'
        '<div class="muted">{}</div></div>\n',
        lock.reason,
        (lock.locked_by.username if lock.locked_by else "") or "an admin",
        until,
        truncatechars(lock.reason, 48),
    )


BAR_FILLS = {"bad": "#b91c1c", "info": "#1d4ed8"}


def _fill(tone: str) -> str:
    return BAR_FILLS.get(tone, "#15803d")


@register.simple_tag
def chart_bars(bars) -> str:
    """The `<rect>`s of a /dora/ chart (`dora.Bar`s): two charts of up to 90 days, stacked."""
    return format_html_join(
        "",
        '<rect class="bar tone-{}" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        ((bar.tone, f"{bar.x:.1f}", bar.y, f"{bar.width:.1f}", bar.height, _fill(bar.tone), bar.label) for bar in bars),
    )


@register.simple_tag
def deployment_rows(deployments) -> str:
    """The rows of a deployments table (history, a service's or an environment's recent ones):
    fifty rows of eight cells, the widgets above in each."""
    rows = [_deployment_row(d) for d in deployments]
    if not rows:
        return mark_safe('<tr><td colspan="8">No deployments match.</td></tr>')
    return mark_safe("\n".join(rows))  # noqa: S308 (joins format_html results only)


def _deployment_row(d) -> str:
    kind = ""
    if d.kind == "rollback":
        of = format_html(" of #{}", d.rolls_back_id) if d.rolls_back_id else ""
        kind = format_html(' <span class="badge tone-warn">rollback{}</span>', of)
    requester = "the portal" if d.automatic else ((d.requested_by.username if d.requested_by else "") or "—")
    return format_html(
        '<tr>\n<td><a href="{}">#{}</a></td>\n<td>{}</td>\n<td class="mono">{}{}</td>\n<td>{}</td>\n'
        "<td>{}{}</td>\n<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n</tr>",
        d.get_absolute_url(),
        d.pk,
        d.service.name,
        d.release.version,
        kind,
        d.environment.name,
        badge(d),
        mark_safe("".join(_rolled_back(r) for r in d.rollbacks.all())),  # noqa: S308 (format_html results)
        downtime(d),
        requester,
        when(d.created_at),
    )


def _rolled_back(rollback) -> str:
    version = rollback.release.version
    if rollback.state == "succeeded":
        said = format_html("rolled back to {}", version)
    else:
        said = format_html("rollback to {}: {}", version, rollback.state_label.lower())
    return format_html(
        '\n    <span class="rolled-back">→ <a href="{}">{}</a>{}</span>',
        rollback.get_absolute_url(),
        said,
        " (automatic)" if rollback.automatic else "",
    )


@register.simple_tag
def release_rows(rows) -> str:
    """The rows of a service's releases table: `(release, [(environment, reached), …])` each, fifty
    releases with a mark per environment (what the service page spent most of its rendering on)."""
    if not rows:
        return mark_safe('<tr><td colspan="6">No releases yet.</td></tr>')
    return mark_safe("\n".join(_release_row(release, marks) for release, marks in rows))  # noqa: S308 (format_html results)


def _release_row(release, marks) -> str:
    reached = format_html_join(
        "",
        '<span class="badge tone-{}" title="{} {}">{}</span>',
        (
            ("ok" if done else "muted", "succeeded in" if done else "not yet in", env.name, env.slug)
            for env, done in marks
        ),
    )
    return format_html(
        '<tr>\n<td><a class="mono" href="{}">{}</a></td>\n<td class="reached">{}</td>\n<td class="mono">{}</td>\n'
        "<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n</tr>",
        release.get_absolute_url(),
        release.version,
        reached,
        release.git_sha[:8] or "—",
        _test_summary(release.test_summary),
        release.get_source_display(),
        when(release.created_at),
    )


def _test_summary(summary) -> str:
    if not summary:
        return mark_safe('<span class="muted">—</span>')
    failed = summary.get("failed")
    bad = format_html(' <span class="badge tone-bad">{} failed</span>', failed) if failed else ""
    return format_html("{}/{} passed{}", summary.get("passed") or 0, summary.get("total") or 0, bad)
