from urllib.parse import quote, urlsplit

from django.conf import settings


def frame_source(url: str) -> str:
    """GRAFANA_URL as a CSP source: an origin as is; a sub-path gets a trailing slash, since
    a source path without one matches that exact path only (CSP3 §6.7.2.9)."""
    if not url:
        return "'none'"
    parts = urlsplit(url)
    # ";" and "," would end the source list or the directive: keep them percent-encoded.
    path = quote(parts.path.rstrip("/"), safe="/%-._~!$&'()*+=:@")
    return f"{parts.scheme}://{parts.netloc}" + (f"{path}/" if path else "")


class SecurityHeadersMiddleware:
    """Content-Security-Policy for every page: our own scripts only, frames from Grafana only."""

    def __init__(self, get_response):
        self.get_response = get_response
        frames = frame_source(settings.GRAFANA_URL)
        self.policy = "; ".join(
            [
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data:",
                "connect-src 'self' ws: wss:",
                f"frame-src {frames}",
                "frame-ancestors 'none'",
                "form-action 'self'",
                "base-uri 'self'",
            ]
        )

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", self.policy)
        response.setdefault("Referrer-Policy", "same-origin")
        return response
