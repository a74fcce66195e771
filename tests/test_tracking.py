"""What releases makes of cluster observations it did not cause itself."""

from django.utils import timezone

from clusters import rollout
from clusters.models import Workload
from releases import states, tracking
from tests.factories import make_deployment, make_release


def observe(workload, image):
    progress = rollout.Progress(status=rollout.COMPLETE, message="", image=image, images={workload.name: image})
    tracking.on_workload_observed(workload, progress)


def test_it_flags_drift_on_the_first_observation_after_a_success_it_did_not_watch(cast):
    release = make_release(cast.service)
    make_deployment(release, cast.prod, state=states.SUCCEEDED, finished_at=timezone.now())
    workload = Workload.objects.create(environment=cast.prod, name=cast.service.k8s_deployment, image="hotfix:1")
    observe(workload, "hotfix:1")
    workload.refresh_from_db()
    assert workload.expected_image == release.image
    assert workload.drifted


def test_it_sees_no_drift_when_the_cluster_runs_the_last_success(cast):
    release = make_release(cast.service)
    make_deployment(release, cast.prod, state=states.SUCCEEDED, finished_at=timezone.now())
    workload = Workload.objects.create(environment=cast.prod, name=cast.service.k8s_deployment, image=release.image)
    observe(workload, release.image)
    workload.refresh_from_db()
    assert not workload.drifted


def test_it_expects_nothing_before_the_first_success(cast):
    workload = Workload.objects.create(environment=cast.prod, name=cast.service.k8s_deployment, image="x:1")
    observe(workload, "x:1")
    workload.refresh_from_db()
    assert workload.expected_image == ""
    assert not workload.drifted
