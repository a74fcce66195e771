"""Links that came from outside (Jenkins build URLs, GitHub commit URLs): http and https only.

A URL of any other scheme (`javascript:`, `data:`, `vbscript:`…) must never become a link: it
would run in the portal's origin when clicked. Stored values are cleaned where they enter
(webhooks, integration clients) and templates pass every such URL through `|http_url`.
"""

from urllib.parse import urlsplit

SCHEMES = ("http", "https")


def is_http_url(value) -> bool:
    """True for an absolute http(s) URL with a host; browsers ignore leading spaces and control
    characters in a scheme, so anything that is not plainly `http://host…` is refused."""
    if not isinstance(value, str) or not value or value != value.strip():
        return False
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in SCHEMES and bool(parts.netloc) and value[: len(parts.scheme) + 3].endswith("://")


def http_url(value) -> str:
    """`value` when it is an http(s) URL, else the empty string."""
    return value if is_http_url(value) else ""
