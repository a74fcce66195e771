from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from portal import access, metrics, sso
from portal import views as portal_views
from releases import build_views, dora, guard_views, index_views, views
from releases.api import pages as api_pages

urlpatterns = [
    path("", portal_views.dashboard, name="dashboard"),
    path("healthz", portal_views.healthz, name="healthz"),
    path("readyz", portal_views.readyz, name="readyz"),
    path("metrics", metrics.scrape, name="metrics"),
    # Login, logout and password change only: no e-mail is configured, so no password reset.
    path("accounts/login/", access.LoginView.as_view(), name="login"),
    path("accounts/logout/", access.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    # Single sign-on (OpenID Connect): to the provider, and back.
    path("oidc/authenticate/", login_not_required(sso.AuthenticateView.as_view()), name="oidc_authentication_init"),
    path("oidc/callback/", login_not_required(sso.CallbackView.as_view()), name="oidc_callback"),
    *([path("admin/login/", access.admin_login)] if not settings.LOCAL_LOGIN else []),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico whatever the page says; send them to the real one.
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
        name="favicon",
    ),
    path("services/", index_views.services, name="services"),
    path("releases/", index_views.releases, name="releases"),
    path("services/<slug:slug>/", views.service_detail, name="service"),
    path(
        "services/<slug:slug>/environments/<slug:environment>/rollback/",
        views.rollback,
        name="rollback",
    ),
    path("releases/<int:pk>/", views.release_detail, name="release"),
    path("releases/<int:pk>/deploy/", views.request_deploy, name="request_deploy"),
    path("deployments/<int:pk>/", views.deployment_detail, name="deployment"),
    path("deployments/<int:pk>/events/", views.deployment_events, name="deployment_events"),
    path("deployments/<int:pk>/decide/", views.decide, name="decide"),
    path("deployments/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/waiting/", views.waiting, name="waiting"),
    path("environments/<slug:slug>/", guard_views.environment_detail, name="environment"),
    path("freezes-and-locks/", guard_views.overview, name="guards"),
    path("freezes-and-locks/locks/", guard_views.add_lock, name="add_lock"),
    path("freezes-and-locks/locks/<int:pk>/release/", guard_views.release_lock, name="release_lock"),
    path("freezes-and-locks/freezes/", guard_views.add_freeze, name="add_freeze"),
    path("freezes-and-locks/freezes/<int:pk>/", guard_views.edit_freeze, name="edit_freeze"),
    path("freezes-and-locks/freezes/<int:pk>/delete/", guard_views.delete_freeze, name="delete_freeze"),
    path("history/", views.history, name="history"),
    path("dora/", dora.page, name="dora"),
    path("hooks/", include("releases.webhooks.urls")),
    path("api/", include("releases.api.urls")),
    path("account/tokens/", api_pages.tokens, name="api_tokens"),
    path("account/tokens/<int:pk>/revoke/", api_pages.revoke, name="api_token_revoke"),
    path("services/<slug:slug>/build/", build_views.start, name="start_build"),
    path("builds/<int:pk>/", build_views.build_detail, name="build"),
    path("builds/<int:pk>/abort/", build_views.abort, name="abort_build"),
    path("deployments/<int:pk>/abort-job/", build_views.abort_deploy_job, name="abort_deploy_job"),
]

handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"
