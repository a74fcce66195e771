"""clusters.rollout on hand-built API objects: kubectl's verdicts, fence posts, hopeless pods."""

import pytest

from clusters import rollout


def deployment(replicas=4, generation=2, observed=2, updated=4, ready=4, available=4, total=None, **spec):
    status = {
        "observedGeneration": observed,
        "replicas": replicas if total is None else total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": spec.pop("conditions", []),
    }
    return {
        "metadata": {
            "name": "web",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": "2"},
        },
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}},
            **spec,
        },
        "status": status,
    }


NEW_RS = {
    "metadata": {
        "uid": "rs-2",
        "labels": {"pod-template-hash": "abc"},
        "annotations": {"deployment.kubernetes.io/revision": "2"},
    }
}
OLD_RS = {
    "metadata": {
        "uid": "rs-1",
        "labels": {"pod-template-hash": "old"},
        "annotations": {"deployment.kubernetes.io/revision": "1"},
    }
}


def pod(name, waiting=None, restarts=0, template_hash="abc", ready=False, deleting=False):
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    metadata = {"name": name, "labels": {"pod-template-hash": template_hash}}
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "web:2"}]},
        "status": {
            "phase": "Running" if not waiting else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"image": "web:2", "restartCount": restarts, "state": state}],
        },
    }


def compute(d, pods=()):
    return rollout.compute(d, [OLD_RS, NEW_RS], list(pods), "app")


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable"),
    [(1, 1, 0), (3, 1, 0), (4, 1, 1), (10, 3, 2)],
)
def test_it_resolves_the_default_fence_posts_as_the_controller_does(replicas, surge, unavailable):
    d = deployment(replicas=replicas)
    assert rollout.fence_posts(d) == (surge, unavailable)
    progress = compute(d)
    assert (progress.max_surge, progress.max_unavailable) == (surge, unavailable)
    assert (progress.max_total, progress.min_required) == (replicas + surge, replicas - unavailable)


def test_it_rounds_explicit_percentages_and_takes_integers_as_they_are():
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "50%"}}
    assert rollout.fence_posts(deployment(replicas=3, strategy=strategy)) == (2, 1)
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 2}}
    assert rollout.fence_posts(deployment(replicas=10, strategy=strategy)) == (0, 2)


def test_it_makes_one_pod_unavailable_when_both_fence_posts_are_zero():
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    assert rollout.fence_posts(deployment(replicas=4, strategy=strategy)) == (0, 1)


def test_it_caps_max_unavailable_at_the_replica_count():
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 5}}
    assert rollout.fence_posts(deployment(replicas=3, strategy=strategy)) == (1, 3)


def test_it_waits_while_the_controller_has_not_seen_the_new_spec():
    progress = compute(deployment(generation=3, observed=2))
    assert progress.status == rollout.WAITING


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"updated": 2, "total": 5, "available": 3}, "2 of 4 new replicas updated."),
        ({"updated": 4, "total": 5, "available": 4}, "1 old replica pending termination."),
        ({"updated": 4, "total": 6, "available": 4}, "2 old replicas pending termination."),
        ({"updated": 4, "total": 4, "available": 3}, "3 of 4 updated replicas available."),
    ],
)
def test_it_reports_progress_with_kubectls_checks_in_kubectls_order(counts, message):
    progress = compute(deployment(**counts))
    assert (progress.status, progress.message) == (rollout.PROGRESSING, message)


def ready_pods(n=4, template_hash="abc"):
    return [pod(f"web-{template_hash}-{i}", template_hash=template_hash, ready=True) for i in range(n)]


def test_it_is_complete_when_every_replica_is_updated_and_available():
    progress = compute(deployment(), ready_pods())
    assert progress.status == rollout.COMPLETE
    assert progress.message == 'Deployment "web" successfully rolled out (4/4 available).'
    assert (progress.revision, progress.image, progress.images) == ("2", "web:2", {"app": "web:2"})


def test_it_fails_past_the_progress_deadline_naming_what_the_new_pods_wait_for():
    deadline = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    pods = [pod("web-abc-1", waiting="ContainerCreating"), pod("web-old-1", template_hash="old", ready=True)]
    progress = compute(deployment(updated=1, available=3, total=5, conditions=[deadline]), pods)
    assert progress.status == rollout.FAILED
    assert progress.message == 'Deployment "web" exceeded its progress deadline. New pods: ContainerCreating.'


def test_it_fails_on_a_new_pod_crash_looping_after_a_few_restarts():
    progress = compute(deployment(updated=1, available=3, total=5), [pod("web-abc-1", "CrashLoopBackOff", restarts=2)])
    assert progress.status == rollout.FAILED
    assert progress.message == "Pod web-abc-1 is crash-looping (CrashLoopBackOff, 2 restarts)."


def test_it_gives_a_crashing_pod_its_first_restart_of_grace():
    progress = compute(deployment(updated=1, available=3, total=5), [pod("web-abc-1", "CrashLoopBackOff", restarts=1)])
    assert progress.status == rollout.PROGRESSING


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "InvalidImageName"])
def test_it_fails_on_a_new_pod_that_cannot_start(reason):
    progress = compute(deployment(updated=1, available=3, total=5), [pod("web-abc-1", reason)])
    assert progress.status == rollout.FAILED
    assert progress.message == f"Pod web-abc-1 cannot start: {reason} for image web:2."


def test_it_ignores_old_and_terminating_pods_in_trouble():
    pods = [
        pod("web-old-1", "CrashLoopBackOff", restarts=9, template_hash="old"),
        pod("web-abc-1", "ImagePullBackOff", deleting=True),
    ]
    progress = compute(deployment(updated=1, available=3, total=5), pods)
    assert progress.status == rollout.PROGRESSING
    assert [p["status"] for p in progress.pods] == ["Terminating", "CrashLoopBackOff"]  # new pods first


def test_it_says_a_paused_rollout_is_paused():
    progress = compute(deployment(updated=2, total=5, available=3, paused=True))
    assert (progress.status, progress.message, progress.paused) == (rollout.PROGRESSING, "The rollout is paused.", True)


def test_it_waits_for_the_pods_to_agree_before_calling_a_rollout_complete():
    """The Deployment's status can arrive before the last pod changes (separate watch streams)."""
    two_seen = ready_pods(2) + [pod("web-abc-3"), pod("web-old-1", template_hash="old", ready=True)]
    progress = compute(deployment(), two_seen)
    assert progress.status == rollout.PROGRESSING
    assert progress.message == "Rolled out; waiting to see the pods settle (2 of 4 new pods ready, 1 old still up)."


def test_it_completes_while_old_pods_are_still_terminating():
    pods = ready_pods() + [pod("web-old-1", template_hash="old", ready=True, deleting=True)]
    assert compute(deployment(), pods).status == rollout.COMPLETE


def test_it_shows_a_crash_looping_pod_as_not_ready_whatever_its_condition_says():
    progress = compute(deployment(updated=1, total=5), [pod("web-abc-1", "CrashLoopBackOff", restarts=1, ready=True)])
    assert progress.pods[0]["ready"] is False


def test_it_counts_the_new_versions_ready_pods_apart_from_the_old_ones():
    new_rs = {**NEW_RS, "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 1}}
    pods = [pod("web-abc-1", ready=True), pod("web-abc-2"), *ready_pods(3, template_hash="old")]
    progress = rollout.compute(deployment(updated=2, ready=5, available=5, total=5), [OLD_RS, new_rs], pods, "app")
    # Ready counts the pods listed, whatever the (possibly older) ReplicaSet status says.
    assert (progress.ready, progress.new_ready, progress.new_available) == (5, 1, 1)
