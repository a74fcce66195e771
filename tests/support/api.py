"""Clients for the REST API: a token of given scopes for a user, sent as a bearer header."""

from rest_framework.test import APIClient

from releases.api.models import ApiToken


def token_for(user, *scopes, name=None, days=None) -> str:
    _, plain = ApiToken.issue(user, name or f"{user.username}-{'-'.join(scopes) or 'none'}", scopes, days=days)
    return plain


def api_as(user, *scopes, **kwargs) -> APIClient:
    """A client sending a fresh token of `user` with `scopes` (default: every scope)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, *(scopes or ('admin',)), **kwargs)}")
    return client
