"""Clients for the REST API: a token of given scopes for a user, sent as a bearer header."""

from itertools import count

from rest_framework.test import APIClient

from releases.api.models import ApiToken

_numbers = count(1)


def token_for(user, *scopes, name=None, days=None) -> str:
    """A new token of `user` with `scopes`, named `name` (default: user-scopes, made unique)."""
    if name is None:
        name = f"{user.username}-{'-'.join(scopes) or 'none'}"
        if ApiToken.objects.filter(user=user, name=name).exists():
            name += f"-{next(_numbers)}"
    _, plain = ApiToken.issue(user, name, scopes, days=days)
    return plain


def api_as(user, *scopes, **kwargs) -> APIClient:
    """A client sending a fresh token of `user` with `scopes` (default: every scope)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, *(scopes or ('admin',)), **kwargs)}")
    return client
