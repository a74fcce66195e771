from django.conf import settings


class SecurityHeadersMiddleware:
    """Content-Security-Policy for every page: our own scripts only, frames from Grafana only."""

    def __init__(self, get_response):
        self.get_response = get_response
        frames = settings.GRAFANA_URL or "'none'"
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
