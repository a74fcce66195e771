"""Sessions as websockets see them: is the session a socket was opened with still good, and
the channel groups through which a logout or a deactivation closes that session's sockets.

A socket is authenticated once, when it opens; these let it end with its session: at logout
(a message to the session's group), when the account is deactivated or deleted (the user's
group), and at expiry or any other invalidation (a password change, an SSO session past its
maximum age, a session deleted in the admin), which the socket finds by re-checking.
"""

import hashlib
import time
from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.contrib import auth

from plumbing import live

ENDED = "session.ended"
# Set by portal.sso on a single sign-on session: {"expires_at": epoch seconds, …}.
SSO_KEY = "sso"


def session_group(session_key: str) -> str:
    # A hash: group names end up in Redis keys, and the session key is a credential.
    return "session-" + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def user_group(user_id) -> str:
    return f"user-{user_id}"


def end_sockets(group: str) -> None:
    """Close every socket in `group` (after the current transaction commits)."""
    live.send(group, {"type": ENDED})


def sso_expired(session) -> bool:
    sso = session.get(SSO_KEY)
    return isinstance(sso, dict) and float(sso.get("expires_at", 0)) <= time.time()


def seconds_left(session_key: str, user_id) -> float:
    """How long the session stays good (0 when it is not good now): it must still exist and be
    unexpired, still authenticate the same active user with the same password, and — for SSO —
    be within its maximum age."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = auth.get_user(SimpleNamespace(session=store))
    if not user.is_authenticated or user.pk != user_id or not user.is_active:
        return 0.0
    left = store.get_expiry_age()
    sso = store.get(SSO_KEY)
    if isinstance(sso, dict):
        left = min(left, float(sso.get("expires_at", 0)) - time.time())
    return max(0.0, left)
