"""`|http_url`: the URL when it is http(s), else "" — for every link whose target came from outside.

Registered as a template builtin (settings.TEMPLATES), so no `{% load %}` is needed:
`{% if build.url|http_url %}<a href="{{ build.url|http_url }}">…</a>{% endif %}`.
"""

from django import template

from plumbing import weblinks

register = template.Library()


@register.filter
def http_url(value) -> str:
    return weblinks.http_url(value)
