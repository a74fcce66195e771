"""Jenkins formatting: a build's colour. What a person may do with a build is decided by the
views (releases.builds), never here."""

from django import template

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
