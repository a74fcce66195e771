"""The Python widget tags write the markup the includes they replaced wrote (pages' scripts and
tests read it), for every branch of each."""

import re
from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from releases import states
from releases.models import Deployment
from releases.templatetags import widgets
from releases.views import TimelineItem
from tests.factories import make_deployment, make_release

# The includes as they were (templates/includes/*.html before the tags).
BADGE = (
    '<span class="badge tone-{{ deployment.tone }}" data-state="{{ deployment.state }}">'
    "{{ deployment.state_label }}</span>"
)
WHEN = (
    # data-relative: portal.js says it again from the clock (the page may be a kept fragment).
    "{% load humanize %}<time datetime=\"{{ at|date:'c' }}\" title=\"{{ at|date:'Y-m-d H:i:s T' }}\" data-relative>"
    "{{ at|naturaltime }}</time>"
)
PROGRESS = (
    '{% with p=deployment.progress %}{% if p.desired %}<progress class="bar tone-{{ deployment.tone }}" '
    'max="{{ p.desired }}" value="{{ p.updated|default:0 }}" title="{{ p.updated }} of {{ p.desired }} updated, '
    '{{ p.available }} available">{{ p.updated }}/{{ p.desired }}</progress>{% endif %}{% endwith %}'
)
DOWNTIME = (
    "{% with dt=deployment.downtime desired=deployment.progress.desired %}{% if dt.checked %}{% if dt.dropped %}"
    '<span class="badge tone-bad" data-downtime="dropped">availability dropped {{ dt.seconds|floatformat:0 }}s: '
    "down to {{ dt.min_available }}{% if desired %} of {{ desired }}{% endif %} available (minimum "
    '{{ dt.min_required }})</span>{% else %}<span class="badge tone-ok" data-downtime="none">no downtime: never '
    "below {{ dt.min_available }}{% if desired %} of {{ desired }}{% endif %} available (minimum "
    '{{ dt.min_required }})</span>{% endif %}{% else %}<span class="muted" data-downtime="unknown">—</span>'
    "{% endif %}{% endwith %}"
)


def included(source, **context) -> str:
    return Template(source).render(Context(context))


DEPLOYMENTS = [
    Deployment(state=states.ROLLING_OUT, kind="deploy", progress={"desired": 4, "updated": 2, "available": 3}),
    Deployment(state=states.ROLLING_OUT, kind="deploy", progress={"desired": 3}),
    Deployment(state=states.PENDING_APPROVAL, kind="deploy", progress={}),
    Deployment(state=states.SUCCEEDED, kind="rollback", progress={"desired": 2, "updated": 0}),
    Deployment(
        state=states.FAILED,
        kind="deploy",
        progress={"desired": 3},
        downtime={"checked": True, "dropped": True, "seconds": 12.6, "min_available": 1, "min_required": 2},
    ),
    Deployment(
        state=states.SUCCEEDED, kind="deploy", downtime={"checked": True, "min_available": 3, "min_required": 2}
    ),
]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: f"{d.state}-{d.kind}")
def test_it_writes_what_the_badge_progress_and_downtime_includes_wrote(deployment):
    assert widgets.badge(deployment) == included(BADGE, deployment=deployment)
    assert widgets.progress(deployment) == included(PROGRESS, deployment=deployment)
    assert widgets.downtime(deployment) == included(DOWNTIME, deployment=deployment)


@pytest.mark.parametrize("ago", [timedelta(seconds=5), timedelta(hours=3), timedelta(days=40)])
def test_it_writes_what_the_when_include_wrote(ago):
    at = timezone.now() - ago
    assert widgets.when(at) == included(WHEN, at=at)


def test_it_escapes_what_a_timeline_says():
    item = TimelineItem(1, "log", '<script>alert("x")</script>', timezone.now(), None)
    html = widgets.timeline_items([item])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


# The deployments table's loop as it was, with the widget tags in place of the includes above.
ROWS = (
    "{% for d in deployments %}<tr>"
    '<td><a href="{{ d.get_absolute_url }}">#{{ d.pk }}</a></td><td>{{ d.service.name }}</td>'
    '<td class="mono">{{ d.release.version }}{% if d.kind == "rollback" %} <span class="badge tone-warn">rollback'
    "{% if d.rolls_back_id %} of #{{ d.rolls_back_id }}{% endif %}</span>{% endif %}</td>"
    "<td>{{ d.environment.name }}</td><td>{% badge d %}{% for r in d.rollbacks.all %}"
    ' <span class="rolled-back">→ <a href="{{ r.get_absolute_url }}">{% if r.state == "succeeded" %}rolled back to '
    "{{ r.release.version }}{% else %}rollback to {{ r.release.version }}: {{ r.state_label|lower }}{% endif %}</a>"
    "{% if r.automatic %} (automatic){% endif %}</span>{% endfor %}</td><td>{% downtime d %}</td>"
    '<td>{% if d.automatic %}the portal{% else %}{{ d.requested_by.username|default:"—" }}{% endif %}</td>'
    "<td>{% when d.created_at %}</td></tr>"
    '{% empty %}<tr><td colspan="8">No deployments match.</td></tr>{% endfor %}'
)


def squeezed(html: str) -> str:
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html)).strip()


def test_it_writes_the_rows_the_deployments_table_wrote(cast):
    failed = make_deployment(make_release(cast.service), cast.prod, state=states.FAILED, requested_by=cast.alice)
    make_deployment(
        make_release(cast.service, version="0.9<b>"),
        cast.prod,
        state=states.SUCCEEDED,
        kind="rollback",
        rolls_back=failed,
        automatic=True,
    )
    make_deployment(make_release(cast.service), cast.dev)
    rows = list(Deployment.objects.for_history().with_rollbacks().order_by("-id"))
    assert squeezed(widgets.deployment_rows(rows)) == squeezed(included(ROWS, deployments=rows))
    assert "0.9&lt;b&gt;" in widgets.deployment_rows(rows)
    assert squeezed(widgets.deployment_rows([])) == squeezed(included(ROWS, deployments=[]))
