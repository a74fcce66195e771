"""GitHub formatting: changelogs and reports are read by the views (releases.changelog,
releases.reporting), the templates only lay them out."""

from django import template

register = template.Library()


@register.filter
def release_versions(versions: dict, sha: str) -> str:
    return ", ".join(versions.get(sha, []))
