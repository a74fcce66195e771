"""ASGI entry point: HTTP through Django, websockets through Channels.

A websocket's Origin must be exactly (scheme, host and port) the portal's own — PORTAL_URL — or
one of CSRF_TRUSTED_ORIGINS: a page on another port or scheme of an allowed host must not open
a socket with the user's cookie. Then the socket is authenticated from the session cookie; each
consumer checks permission itself (releases.rules.can_view) and closes when the session ends.
"""

import os
from urllib.parse import urlsplit

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from plumbing import memory  # noqa: E402
from releases.api.longpoll import LongPoll  # noqa: E402
from releases.consumers import UnknownPathConsumer  # noqa: E402
from releases.routing import websocket_urlpatterns  # noqa: E402

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_parts(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, default ports filled in; None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def origin_allowed(origin: str) -> bool:
    """Exactly PORTAL_URL's origin, or one of CSRF_TRUSTED_ORIGINS (`https://*.example.com`
    allows the subdomains of example.com, on that scheme and port)."""
    given = origin_parts(origin)
    if given is None:
        return False
    for trusted in [settings.PORTAL_URL, *settings.CSRF_TRUSTED_ORIGINS]:
        wildcard = "://*." in trusted
        expected = origin_parts(trusted.replace("://*.", "://", 1))
        if expected is None or given[0] != expected[0] or given[2] != expected[2]:
            continue
        if given[1] == expected[1] or (wildcard and given[1].endswith("." + expected[1])):
            return True
    return False


class PortalOriginValidator(OriginValidator):
    def __init__(self, application):
        super().__init__(application, allowed_origins=[])

    def valid_origin(self, parsed_origin):
        return parsed_origin is not None and origin_allowed(parsed_origin.geturl())


# Unknown paths end in a 4404 close rather than a routing exception.
fallback = [re_path(r"", UnknownPathConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        # Long-polls of /api/v1/deployments/<id>/?wait=N wait here, on the event loop.
        "http": LongPoll(django_asgi),
        "websocket": PortalOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns + fallback))),
    }
)

memory.freeze_what_start_up_made()
