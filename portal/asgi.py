"""ASGI entry point: HTTP through Django, websockets through Channels.

Websockets are checked against ALLOWED_HOSTS for their Origin, then authenticated from the
session cookie; each consumer checks permission itself (releases.rules.can_view).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from releases.consumers import UnknownPathConsumer  # noqa: E402
from releases.routing import websocket_urlpatterns  # noqa: E402

# Unknown paths end in a 4404 close rather than a routing exception.
fallback = [re_path(r"", UnknownPathConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns + fallback))),
    }
)
