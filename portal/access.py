"""Signing in and out: the login page (local passwords and SSO), logout (at the provider too), the
end of SSO sessions, and the address login throttling counts per."""

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.http import urlencode

from plumbing import sessions
from portal import sso


def client_ip(request) -> str:
    """django-axes counts failures per this address: REMOTE_ADDR, already the real client
    (portal.middleware.ClientAddressMiddleware believes X-Forwarded-For from trusted proxies only)."""
    return request.META.get("REMOTE_ADDR", "")


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    """The local form (unless LOCAL_LOGIN=0) beside "Sign in with SSO" (when OIDC_ISSUER is set)."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["local_login"] = settings.LOCAL_LOGIN
        context["sso_enabled"] = settings.SSO_ENABLED
        context["failure_limit"] = settings.AXES_FAILURE_LIMIT
        next_url = context.get("next") or ""
        context["sso_url"] = "/oidc/authenticate/" + (f"?{urlencode({'next': next_url})}" if next_url else "")
        return context

    def post(self, request, *args, **kwargs):
        if not settings.LOCAL_LOGIN:
            return render(
                request,
                "registration/sso_refused.html",
                {"message": "Local passwords are switched off here: sign in with SSO."},
                status=403,
            )
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    """Log out here, then at the identity provider when the session came from it."""

    def post(self, request, *args, **kwargs):
        target = sso.logout_url(request.session)
        auth.logout(request)
        return HttpResponseRedirect(target)


@login_not_required
def admin_login(request):
    """With local passwords off, the admin's own login form cannot work: use the portal's."""
    return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': request.GET.get('next', '/admin/')})}")


class SsoSessionMiddleware:
    """An SSO session ends at its maximum age (OIDC_SESSION_MAX_AGE), however active: the person
    signs in at the provider again, which refuses people it no longer knows."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated and sessions.sso_expired(request.session):
            auth.logout(request)
            messages.info(request, "Your single sign-on session has ended: sign in again.")
        return self.get_response(request)


def close_session_sockets(sender, request, user, **kwargs):
    """On logout: the websockets opened with this session close (4401)."""
    if request is not None and request.session.session_key:
        sessions.end_sockets(sessions.session_group(request.session.session_key))


def close_user_sockets(sender, instance, **kwargs):
    """A deactivated or deleted account: all its websockets close (4401)."""
    if kwargs.get("created"):
        return
    if not instance.is_active or "raw" not in kwargs:  # post_delete has no `raw`
        sessions.end_sockets(sessions.user_group(instance.pk))
