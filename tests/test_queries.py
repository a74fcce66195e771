"""Every page costs the same number of SQL queries with 1 row or 30 (no N+1).

Run with `-s` to see the figures: each test prints "queries <page>: <1 row> vs <30 rows>".
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import Environment, FreezeWindow, Lock, Workload
from releases import states
from releases.models import Approval, Deployment, DeploymentEvent, Release, Service
from tests.factories import client_for, make_deployment, make_environment, make_release, make_service, make_user


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def populate(cast, n):
    """n services, each with two releases, a success in dev and staging, a pending prod request."""
    services = [cast.service] + [make_service() for _ in range(n - 1)]
    last = None
    for i, service in enumerate(services):
        old, new = make_release(service), make_release(service, test_summary={"passed": 3, "total": 3})
        make_deployment(old, cast.dev, state=states.SUCCEEDED, finished_at=timezone.now(), requested_by=cast.alice)
        make_deployment(new, cast.dev, state=states.SUCCEEDED, previous_release=old, finished_at=timezone.now())
        make_deployment(new, cast.staging, state=states.SUCCEEDED, requested_by=cast.alice)
        last = make_deployment(new, cast.prod, requested_by=make_user(f"requester-{n}-{i}"))
        Approval.objects.create(deployment=last, user=cast.carol, decision=Approval.APPROVE)
        Workload.objects.create(
            environment=cast.dev, name=service.k8s_deployment, image="other:1", expected_image="x:1"
        )
    return services, last


def busy_deployment(cast, deployment, n):
    """n events and n approvals on one deployment."""
    for i in range(n):
        deployment.log("progress", f"step {i}", actor=cast.alice)
    for i in range(n - 1):
        Approval.objects.create(deployment=deployment, user=make_user(f"voter-{n}-{i}"), decision=Approval.APPROVE)


PAGES = {
    "dashboard": lambda services, deployment: "/",
    "history": lambda services, deployment: "/history/",
    "history filtered": lambda services, deployment: f"/history/?environment=prod&before={deployment.pk + 1}",
    "service": lambda services, deployment: f"/services/{services[0].slug}/",
    "release": lambda services, deployment: f"/releases/{deployment.release_id}/",
    "deployment": lambda services, deployment: f"/deployments/{deployment.pk}/",
    "approvals": lambda services, deployment: "/approvals/",
}


@pytest.mark.parametrize("page", PAGES)
def test_it_renders_each_page_with_a_constant_number_of_queries(page, cast):
    figures = []
    for n in (1, 30):
        services, deployment = populate(cast, n)
        busy_deployment(cast, deployment, n)
        # Extra releases of the first service, so the service page lists n of them.
        for _ in range(n):
            make_release(services[0])
        figures.append(count_queries(client_for(cast.bob), PAGES[page](services, deployment)))
        _reset(cast)
    print(f"\nqueries {page}: {figures[0]} with 1 row vs {figures[1]} with 30 rows")
    assert figures[0] == figures[1]


def _reset(cast):
    DeploymentEvent.objects.all().delete()
    Approval.objects.all().delete()
    Deployment.objects.all().delete()
    Release.objects.all().delete()
    Service.objects.exclude(pk=cast.service.pk).delete()
    Workload.objects.all().delete()


def test_it_renders_the_dashboard_within_a_fixed_query_budget(cast, django_assert_max_num_queries):
    populate(cast, 30)
    client = client_for(cast.bob)
    # Rendered anew (nothing is kept under `db`): 12 for the page, 1 for the freshness tokens.
    with django_assert_max_num_queries(13):
        assert client.get("/").status_code == 200


def test_it_renders_the_release_page_with_a_constant_number_of_queries_whatever_the_environments(cast):
    """Each environment has its own gates (promotion, freeze, locks, active deployment): read them in bulk."""
    release = make_release(cast.service)
    client = client_for(cast.admin)
    figures = []
    for total in (3, 30):
        while Environment.objects.count() < total:
            env = make_environment(cluster=cast.cluster, approver_group=cast.approvers)
            Lock.objects.create(environment=env, reason="maintenance", locked_by=cast.admin)
            FreezeWindow.objects.create(
                environment=env,
                starts_at=timezone.now() - timedelta(hours=1),
                ends_at=timezone.now() + timedelta(hours=1),
                reason="sale",
            )
            make_deployment(release, env, state=states.SUCCEEDED if env.position % 2 else states.ROLLING_OUT)
        figures.append(count_queries(client, f"/releases/{release.pk}/"))
    print(f"\nqueries release: {figures[0]} with 3 environments vs {figures[1]} with 30 environments")
    assert figures[0] == figures[1]
