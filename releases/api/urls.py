"""URLs under /api/: v1 endpoints, the OpenAPI schema and its browsable docs."""

from django.contrib.auth.decorators import login_not_required, login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from releases.api import deployments, views
from releases.api import schema as _schema  # noqa: F401 - registers the bearer scheme with drf-spectacular
from releases.api.errors import not_found


def api(view_class):
    """A DRF view that authenticates itself (token or session): answers 401, never a login redirect."""
    return login_not_required(view_class.as_view())


v1 = [
    path("services/", api(views.ServiceList), name="services"),
    path("services/<slug:slug>/", api(views.ServiceDetail), name="service"),
    path("services/<slug:slug>/rollback/", api(deployments.Rollback), name="rollback"),
    path("environments/", api(views.EnvironmentList), name="environments"),
    path("environments/<slug:slug>/", api(views.EnvironmentDetail), name="environment"),
    path("releases/", api(views.ReleaseList), name="releases"),
    path("releases/<int:pk>/", api(views.ReleaseDetail), name="release"),
    path("deployments/", api(deployments.DeploymentList), name="deployments"),
    path("deployments/<int:pk>/", api(deployments.DeploymentDetail), name="deployment"),
    path("deployments/<int:pk>/approve/", api(deployments.DeploymentApprove), name="approve"),
    path("deployments/<int:pk>/reject/", api(deployments.DeploymentReject), name="reject"),
    path("deployments/<int:pk>/cancel/", api(deployments.DeploymentCancel), name="cancel"),
    path("approvals/", api(deployments.Approvals), name="approvals"),
    path("builds/", api(views.BuildList), name="builds"),
    path("builds/<int:pk>/", api(views.BuildDetail), name="build"),
    path("builds/<int:pk>/abort/", api(views.BuildAbort), name="abort_build"),
    path("freezes/", api(views.FreezeList), name="freezes"),
    path("freezes/<int:pk>/end/", api(views.FreezeEnd), name="end_freeze"),
    path("locks/", api(views.LockList), name="locks"),
    path("locks/<int:pk>/release/", api(views.LockRelease), name="release_lock"),
    path("dora/", api(views.Dora), name="dora"),
    path("me/", api(views.Me), name="me"),
]

# A DRF view marks itself login-not-required (it answers 401 itself); the docs page is for
# people, so it sends them to the login page instead.
docs = login_required(SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html"))
docs.login_required = True

app_name = "api"
urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", api(SpectacularAPIView), name="schema"),
    # The docs page's script is served from a URL of its own (the "split" view), so the CSP's
    # script-src 'self' holds.
    path("docs/", docs, name="docs"),
    re_path(r"^.*$", not_found),
]
