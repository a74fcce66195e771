"""Releases, deployments and builds change only through the portal's flows: the admin shows them
(with their events) but offers no way to add, edit or delete them, not even to a superuser."""

from releases import states
from releases.models import Build
from tests.factories import client_for, make_release, succeed_in


def test_it_shows_releases_deployments_and_builds_without_a_way_to_change_them(cast):
    release = make_release(cast.service)
    deployment = succeed_in(release, cast.dev)
    deployment.log("note", "Rolled out by hand")
    build = Build.objects.create(service=cast.service, job_name="storefront-build", number=7, version="9.9.9")
    client = client_for(cast.admin)
    for model, pk in [("release", release.pk), ("deployment", deployment.pk), ("build", build.pk)]:
        assert client.get(f"/admin/releases/{model}/add/").status_code == 403
        page = client.get(f"/admin/releases/{model}/{pk}/change/")
        assert page.status_code == 200
        assert 'name="_save"' not in page.content.decode()
    events = client.get(f"/admin/releases/deployment/{deployment.pk}/change/").content.decode()
    assert "Rolled out by hand" in events
    assert 'name="events-0-message"' not in events
    assert "events-0-DELETE" not in events


def test_it_refuses_a_posted_change_and_keeps_the_row(cast):
    deployment = succeed_in(make_release(cast.service), cast.dev)
    response = client_for(cast.admin).post(
        f"/admin/releases/deployment/{deployment.pk}/change/", {"state": states.FAILED, "reason": "edited"}
    )
    assert response.status_code == 403
    deployment.refresh_from_db()
    assert (deployment.state, deployment.reason) == (states.SUCCEEDED, "")
