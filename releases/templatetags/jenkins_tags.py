"""Jenkins formatting: a build's colour. What a person may do with a build is decided by the
views (releases.rules), never here."""

from django import template

register = template.Library()


@register.filter
def build_tone(build) -> str:
    return build.tone
