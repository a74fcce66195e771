import ipaddress
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.http import Http404
from django.shortcuts import render


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

    @staticmethod
    def policy() -> str:
        # Logging out of an SSO session redirects the logout form to the provider's end-session page.
        forms = f"'self' {frame_source(settings.OIDC_ISSUER)}" if settings.SSO_ENABLED else "'self'"
        return "; ".join(
            [
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data:",
                "connect-src 'self' ws: wss:",
                f"frame-src {frame_source(settings.GRAFANA_URL)}",
                "frame-ancestors 'none'",
                f"form-action {forms}",
                "base-uri 'self'",
            ]
        )

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", self.policy())
        response.setdefault("Referrer-Policy", "same-origin")
        return response


# Headers only a proxy may set: dropped unless the request comes from a trusted proxy.
FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PORT", "HTTP_X_REAL_IP")


def _address(text: str):
    """An IP address from a header hop (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`), or None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address, proxies) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str, forwarded_for: str, proxies) -> str:
    """The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
    X-Forwarded-For hop that is not itself a trusted proxy (hops further left are the client's
    own claims, which anyone can forge)."""
    if not _trusted(_address(peer), proxies):
        return peer
    client = peer
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        address = _address(hop)
        if address is None:
            break
        client = str(address)
        if not _trusted(address, proxies):
            break
    return client


class ClientAddressMiddleware:
    """REMOTE_ADDR becomes the real client address; forwarding headers from anyone but a trusted
    proxy (settings.TRUSTED_PROXIES) are dropped before anything reads them (the HTTPS redirect,
    the audit log, login throttling)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta, proxies = request.META, settings.TRUSTED_PROXIES
        peer = meta.get("REMOTE_ADDR", "")
        if _trusted(_address(peer), proxies):
            meta["REMOTE_ADDR"] = client_address(peer, meta.get("HTTP_X_FORWARDED_FOR", ""), proxies)
            # The address is settled; the header would only tempt readers into trusting its first hop.
            meta.pop("HTTP_X_FORWARDED_FOR", None)
        else:
            for header in FORWARDED_HEADERS:
                meta.pop(header, None)
        return self.get_response(request)


class NotFoundPageMiddleware:
    """With DEBUG=1 (the demo) Django answers an unknown address with its technical 404 page;
    people get the portal's own page instead, as in production."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        unresolved = getattr(request, "resolver_match", None) is None
        if settings.DEBUG and response.status_code == 404 and unresolved and _is_html(response):
            return render(request, "404.html", status=404)
        return response

    def process_exception(self, request, exception):
        if settings.DEBUG and isinstance(exception, Http404):
            return render(request, "404.html", status=404)
        return None


def _is_html(response) -> bool:
    return response.get("Content-Type", "").startswith("text/html")
