"""Single sign-on with OpenID Connect: authorization code flow with PKCE (S256), state and nonce,
on top of mozilla-django-oidc.

What the library does: the authorization request (state, nonce and the PKCE pair kept in the
session), the code-for-token exchange, fetching the provider's signing keys and checking the
signature and the nonce. What is added here, because the library leaves it out:

- endpoints from the provider's discovery document (`OIDC_ISSUER/.well-known/openid-configuration`,
  whose `issuer` must be OIDC_ISSUER exactly), cached for an hour per process;
- the ID token's issuer, audience (and `azp` when there are several), expiry and issue time;
- accounts linked by (issuer, subject) only, created at first login, never matched by e-mail;
- groups: the OIDC_GROUPS_CLAIM claim mapped through OIDC_GROUP_MAP, re-synced at every login;
- a clear page for every refusal (provider error, unknown or replayed state, bad token);
- logout at the provider (RP-initiated logout) when it offers an `end_session_endpoint`.
# Reference: https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
# Reference: https://mozilla-django-oidc.readthedocs.io/en/stable/
"""

import re
import time
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from plumbing import sessions
from portal.models import SsoIdentity

DISCOVERY_TTL_SECONDS = 3600
# Clocks of the portal and the provider may differ this much.
LEEWAY_SECONDS = 60
SESSION_KEY = sessions.SSO_KEY
BACKEND = "portal.sso.Backend"

_discovery: dict = {}


class ProviderUnavailable(Exception):
    """The identity provider cannot be reached or answers nonsense; the message says which."""


class SignInRefused(Exception):
    """The provider's answer fails a check; the message is for the person signing in."""


# -- discovery ----------------------------------------------------------------------------------


def discovery() -> dict:
    """The provider's metadata, fetched once an hour.

    # Reference: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata
    """
    cached = _discovery.get(settings.OIDC_ISSUER)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    url = f"{settings.OIDC_ISSUER}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnavailable(f"The identity provider's discovery document at {url} cannot be read: {error}")
    if not isinstance(document, dict) or document.get("issuer") != settings.OIDC_ISSUER:
        raise ProviderUnavailable(f"The discovery document at {url} names another issuer than {settings.OIDC_ISSUER}.")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(key), str) or not document[key].startswith(("https://", "http://")):
            raise ProviderUnavailable(f"The discovery document at {url} has no usable {key}.")
    _discovery[settings.OIDC_ISSUER] = (time.monotonic() + DISCOVERY_TTL_SECONDS, document)
    return document


def refusal(request, message: str, status: int):
    return render(request, "registration/sso_refused.html", {"message": message}, status=status)


# -- starting a sign-in -------------------------------------------------------------------------


class AuthenticateView(OIDCAuthenticationRequestView):
    """`/oidc/authenticate/?next=…`: off to the provider with state, nonce and a PKCE challenge."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the parent reads endpoints from settings; discovery has them

    def get(self, request):
        if not settings.SSO_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = discovery()["authorization_endpoint"]
        except ProviderUnavailable as problem:
            return refusal(request, f"{problem} Try again later, or sign in with a local password.", 503)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        return super().get(request)


# -- the provider's answer ----------------------------------------------------------------------


class CallbackView(View):
    """`/oidc/callback/?code=…&state=…`: check the state, let the backend check the rest, log in."""

    http_method_names = ["get"]

    def get(self, request):
        if not settings.SSO_ENABLED:
            raise Http404("Single sign-on is not configured.")
        if request.GET.get("error"):
            _forget_state(request, request.GET.get("state", ""))
            error = request.GET.get("error", "")[:100]
            description = request.GET.get("error_description", "")[:300]
            return refusal(request, f"The identity provider did not sign you in ({error}). {description}", 403)
        state, code = request.GET.get("state", ""), request.GET.get("code", "")
        if not state or not code:
            return refusal(request, "The answer from the identity provider is incomplete: no code or state.", 400)
        pending = _forget_state(request, state)
        if pending is None:
            return refusal(
                request,
                "This sign-in answer was already used, has expired, or was started in another browser "
                "(unknown state). Start again from the login page.",
                400,
            )
        return self._authenticate(request, pending)

    def _authenticate(self, request, pending: dict):
        try:
            user = auth.authenticate(
                request=request, nonce=pending.get("nonce"), code_verifier=pending["code_verifier"]
            )
        except SignInRefused as problem:
            return refusal(request, str(problem), 403)
        except ProviderUnavailable as problem:
            return refusal(request, f"{problem} Try again later.", 503)
        if getattr(request, "axes_locked_out", False):
            return refusal(request, "Too many failed sign-ins from this address; try again later.", 429)
        if user is None or not user.is_active:
            return refusal(request, "Your portal account is deactivated. Ask an admin to reactivate it.", 403)
        next_url = request.session.get("oidc_login_next") or settings.LOGIN_REDIRECT_URL
        id_token = getattr(user, "_sso_id_token", "")
        auth.login(request, user, backend=BACKEND)
        start_session(request, id_token)
        if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
            next_url = settings.LOGIN_REDIRECT_URL
        return redirect(next_url)


def _forget_state(request, state: str) -> dict | None:
    """Take `state` out of the session (each answer is good once) and return what was kept for it."""
    states = request.session.get("oidc_states")
    if not isinstance(states, dict) or state not in states:
        return None
    pending = states.pop(state)
    request.session["oidc_states"] = states
    request.session.save()
    return pending


def start_session(request, id_token: str) -> None:
    """An SSO session lasts OIDC_SESSION_MAX_AGE at most, whatever activity there is."""
    max_age = min(settings.OIDC_SESSION_MAX_AGE, settings.SESSION_COOKIE_AGE)
    request.session[SESSION_KEY] = {"expires_at": time.time() + max_age, "id_token": id_token}
    request.session.set_expiry(max_age)


def logout_url(session) -> str:
    """Where to send a browser after a local logout: the provider's end-session endpoint for an
    SSO session when the provider has one (RP-initiated logout), else the login page."""
    sso = session.get(SESSION_KEY)
    if not settings.SSO_ENABLED or not isinstance(sso, dict):
        return settings.LOGOUT_REDIRECT_URL
    try:
        endpoint = discovery().get("end_session_endpoint")
    except ProviderUnavailable:
        endpoint = None
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return settings.LOGOUT_REDIRECT_URL
    query = {
        "client_id": settings.OIDC_CLIENT_ID,
        "post_logout_redirect_uri": f"{settings.PORTAL_URL}{settings.LOGOUT_REDIRECT_URL}",
    }
    if sso.get("id_token"):
        query["id_token_hint"] = sso["id_token"]
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


# -- the backend --------------------------------------------------------------------------------


class Backend(OIDCAuthenticationBackend):
    """Checks the ID token in full, links the account by (issuer, subject), syncs its groups."""

    def __init__(self, *args, **kwargs):
        # Endpoints are read from discovery only when a callback arrives: a local login must
        # not depend on the provider being up.
        self.UserModel = auth.get_user_model()

    def authenticate(self, request, **kwargs):
        if request is None or "code_verifier" not in kwargs or not request.GET.get("code"):
            return None
        metadata = discovery()
        self.OIDC_OP_TOKEN_ENDPOINT = metadata["token_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = metadata["jwks_uri"]
        self.OIDC_OP_USER_ENDPOINT = metadata.get("userinfo_endpoint") or ""
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        try:
            return super().authenticate(request, **kwargs)
        except requests.RequestException as error:
            raise SignInRefused(f"The identity provider refused to complete the sign-in: {_short(error)}")
        except SuspiciousOperation as error:
            raise SignInRefused(f"The identity provider's answer failed a check: {error}")

    def get_token(self, payload):
        token = super().get_token(payload)
        if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
            raise SignInRefused("The identity provider sent no ID token.")
        self.id_token = token["id_token"]
        return token

    def retrieve_matching_jwk(self, token):
        """The provider's signing key for `token`: the one its `kid` names, or — for a token without
        a `kid` — the provider's only key of the token's algorithm family."""
        try:
            response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            keys = [k for k in response.json().get("keys", []) if isinstance(k, dict)]
        except (requests.RequestException, ValueError, AttributeError) as error:
            raise ProviderUnavailable(f"The identity provider's signing keys cannot be read: {_short(error)}")
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        usable = [
            k for k in keys if k.get("use", "sig") == "sig" and k.get("alg", header.get("alg")) == header.get("alg")
        ]
        matching = [k for k in usable if k.get("kid") == kid] if kid else usable
        if len(matching) != 1:
            raise SignInRefused("The ID token is not signed with a key the identity provider publishes.")
        return jwt.PyJWK(matching[0], algorithm=header.get("alg"))

    def _verify_jws(self, payload, key):
        """The signature (by the parent's rules) and the claims the parent leaves unchecked."""
        algorithm = jwt.get_unverified_header(payload).get("alg")
        if algorithm != settings.OIDC_RP_SIGN_ALGO:
            raise SignInRefused(f"The ID token is signed with {algorithm}, not {settings.OIDC_RP_SIGN_ALGO}.")
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[algorithm],
                audience=settings.OIDC_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise SignInRefused("The identity provider's ID token has expired. Sign in again.")
        except jwt.InvalidAudienceError:
            raise SignInRefused(
                f"The identity provider's ID token was issued for another application, not {settings.OIDC_CLIENT_ID}."
            )
        except jwt.InvalidIssuerError:
            raise SignInRefused(f"The ID token was not issued by {settings.OIDC_ISSUER}.")
        except jwt.InvalidTokenError as error:
            raise SignInRefused(f"The identity provider's ID token is not valid: {error}.")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != settings.OIDC_CLIENT_ID:
            raise SignInRefused("The ID token names several audiences but was not issued to the portal (azp).")
        return claims

    def verify_token(self, token, **kwargs):
        try:
            return super().verify_token(token, **kwargs)
        except SuspiciousOperation as error:
            if "Nonce" in str(error):
                raise SignInRefused("The ID token does not answer this sign-in (nonce mismatch): start again.")
            raise

    def get_userinfo(self, access_token, id_token, payload):
        if not self.OIDC_OP_USER_ENDPOINT:
            return {}
        info = super().get_userinfo(access_token, id_token, payload)
        return info if isinstance(info, dict) else {}

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub", payload["sub"]) != payload["sub"]:
            raise SignInRefused("The identity provider's user info is about someone else than the ID token.")
        claims = {**userinfo, **payload}
        user = link_user(settings.OIDC_ISSUER, str(payload["sub"]), claims)
        user._sso_id_token = id_token
        return user


def _short(error) -> str:
    response = getattr(error, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} from {response.url.split('?')[0]}: {response.text[:200]}"
    return str(error)[:300]


# -- accounts and groups ------------------------------------------------------------------------


def link_user(issuer: str, subject: str, claims: dict):
    """The portal user of (issuer, subject), created at first login; names and groups from `claims`."""
    with transaction.atomic():
        identity = (
            SsoIdentity.objects.select_related("user")
            .select_for_update()
            .filter(issuer=issuer, subject=subject)
            .first()
        )
        if identity is None:
            identity = _create_identity(issuer, subject, claims)
        user = identity.user
        if not user.is_active:
            raise SignInRefused("Your portal account is deactivated. Ask an admin to reactivate it.")
        _update_profile(user, claims)
        sync_groups(user, claims)
        SsoIdentity.objects.filter(pk=identity.pk).update(last_login_at=timezone.now())
    return user


def _create_identity(issuer: str, subject: str, claims: dict) -> SsoIdentity:
    User = auth.get_user_model()
    base = _username(claims, subject)
    for attempt in range(1, 50):
        name = base if attempt == 1 else f"{base[:140]}-{attempt}"
        try:
            with transaction.atomic():
                user = User.objects.create_user(name, email=_email(claims))
                user.set_unusable_password()
                user.save(update_fields=["password"])
                return SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        except IntegrityError:
            continue
    raise SignInRefused("No free username could be made for your account. Ask an admin.")


def _username(claims: dict, subject: str) -> str:
    for candidate in (claims.get("preferred_username"), str(claims.get("email") or "").partition("@")[0]):
        cleaned = re.sub(r"[^\w.@+-]", "", str(candidate or ""))[:150]
        if cleaned:
            return cleaned
    return f"sso-{re.sub(r'[^A-Za-z0-9]', '', subject)[:40] or 'user'}"


def _email(claims: dict) -> str:
    email = claims.get("email")
    return email[:254] if isinstance(email, str) and "@" in email else ""


def _update_profile(user, claims: dict) -> None:
    fields = {
        "email": _email(claims) or user.email,
        "first_name": str(claims.get("given_name") or claims.get("name") or user.first_name)[:150],
        "last_name": str(claims.get("family_name") or user.last_name)[:150],
    }
    changed = [name for name, value in fields.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, fields[name])
    if changed:
        user.save(update_fields=changed)


def provider_groups(claims: dict) -> set[str]:
    """The provider's groups from OIDC_GROUPS_CLAIM: a list of names (or one name)."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return set()
    return {item for item in value if isinstance(item, str)}


def sync_groups(user, claims: dict) -> None:
    """Portal groups named in OIDC_GROUP_MAP follow the provider: exactly the mapped ones are
    kept. Groups the map does not name (given by an admin in the portal) are left alone."""
    managed = {portal for _, portal in settings.OIDC_GROUP_MAP}
    theirs = provider_groups(claims)
    wanted = {portal for provider, portal in settings.OIDC_GROUP_MAP if provider in theirs}
    current = {group.name: group for group in user.groups.filter(name__in=managed)}
    stale = [group for name, group in current.items() if name not in wanted]
    if stale:
        user.groups.remove(*stale)
    missing = [Group.objects.get_or_create(name=name)[0] for name in sorted(wanted - current.keys())]
    if missing:
        user.groups.add(*missing)
