"""What releases makes of cluster observations it did not cause itself."""

from clusters import rollout
from clusters.models import Workload
from releases import states, tracking
from tests.factories import make_deployment, make_release, succeed_in


def observe(workload, image):
    progress = rollout.Progress(status=rollout.COMPLETE, message="", image=image, images={workload.name: image})
    tracking.on_workload_observed(workload, progress)


def test_it_flags_drift_on_the_first_observation_after_a_success_it_did_not_watch(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.prod)
    workload = Workload.objects.create(environment=cast.prod, name=cast.service.k8s_deployment, image="hotfix:1")
    observe(workload, "hotfix:1")
    workload.refresh_from_db()
    assert workload.expected_image == release.image
    assert workload.drifted


def test_it_sees_no_drift_when_the_cluster_runs_the_last_success(cast):
    release = make_release(cast.service)
    succeed_in(release, cast.prod)
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


def test_it_drops_a_picture_older_than_the_one_recorded(cast):
    """The watcher's cache and the reconciler's direct read race: an older Deployment object that
    arrives late must not move the bars backwards (Updated 4/4 → 2/4 → 4/4)."""
    release = make_release(cast.service)
    deployment = make_deployment(release, cast.prod, state=states.ROLLING_OUT, generation=2)
    deployment = type(deployment).objects.select_related("service", "environment", "release").get(pk=deployment.pk)

    def seen(version, updated):
        return rollout.Progress(
            status=rollout.PROGRESSING,
            message=f"{updated} of 4 new replicas updated.",
            desired=4,
            updated=updated,
            generation=2,
            observed_generation=2,
            resource_version=version,
            image=release.image,
            images={cast.service.k8s_container: release.image},
        )

    tracking.advance(deployment, seen("41", 4))
    tracking.advance(deployment, seen("37", 2))
    deployment.refresh_from_db()
    updates = [e.data["progress"]["updated"] for e in deployment.events.filter(kind="progress").order_by("seq")]
    assert updates == [4]
    assert deployment.progress["updated"] == 4
