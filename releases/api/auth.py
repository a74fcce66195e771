"""Who is calling, and may this token do this: `Authorization: Bearer <token>` or the session.

A token acts as its owner (the rules in releases/rules.py see the owner, never the token),
narrowed by its scopes. The browser's session acts with all the user's rights, with CSRF
checked on writes by DRF's SessionAuthentication.
"""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission

from releases.api.models import ADMIN, DEPLOY, READ, ApiToken


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer pmp_…`: a personal or service-account token."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send the token as `Authorization: Bearer <token>`, nothing else.")
        try:
            plain = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("This is not an API token (tokens are ASCII).")
        token = ApiToken.find(plain)
        if token is None:
            raise exceptions.AuthenticationFailed("This API token is not known. Check PAMPAM_TOKEN or make a new one.")
        problem = token.problem()
        if problem:
            raise exceptions.AuthenticationFailed(problem)
        token.touch()
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="pampam"'


def token_of(request) -> ApiToken | None:
    """The token a request came with, or None for the browser's session."""
    return request.auth if isinstance(request.auth, ApiToken) else None


def scope_problem(request, scope: str) -> str:
    """Why this request's token lacks `scope`, or "" (sessions carry every scope)."""
    token = token_of(request)
    if token is None or token.allows(scope):
        return ""
    return (
        f"API token {token.name} has the scopes {', '.join(token.scopes) or 'none'}; "
        f"this needs the {scope} scope. Make a token with it on your API tokens page."
    )


class ScopePermission(BasePermission):
    """Reads need `read`; writes need the view's `write_scope` (default `deploy`)."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        scope = READ if request.method in SAFE_METHODS else getattr(view, "write_scope", DEPLOY)
        problem = scope_problem(request, scope)
        if problem:
            self.message = problem
            return False
        return True


def override_problem(request, override_reason: str) -> str:
    """Overriding a freeze or a lock through the API also needs the admin scope."""
    return scope_problem(request, ADMIN) if override_reason.strip() else ""
