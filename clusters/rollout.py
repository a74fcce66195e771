"""Progress of a Deployment's rollout, read the way `kubectl rollout status` reads it.

Input: the Deployment, the ReplicaSets and the Pods it owns, as API dicts. Output: a
Progress with counts, a status (waiting / progressing / complete / failed) and a message a
person understands. kubectl's rules (pkg/polymorphichelpers/rollout_status.go) come first;
we add what kubectl leaves to the reader: pods that crash-loop or cannot pull their image
will never become ready, so the rollout has failed even before its deadline.
"""

import math
from dataclasses import asdict, dataclass, field, replace

WAITING = "waiting"
PROGRESSING = "progressing"
COMPLETE = "complete"
FAILED = "failed"

# Container waiting reasons that mean "this pod will not become ready by itself".
HOPELESS = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}
# A crash-looping pod gets a few restarts' grace: apps that crash once on start exist.
CRASH_RESTARTS = 2


@dataclass
class Replicas:
    """The Deployment's replica counts as `kubectl rollout status` reads them: old and new pods
    together."""

    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    total: int = 0


@dataclass
class NewVersion:
    """How much of the *new version* is ready (`Replicas.ready` and `.available` count old and
    new pods together, as kubectl does): counted from the pods a Progress lists, so the two
    always agree."""

    new_ready: int = 0
    new_available: int = 0  # the new ReplicaSet's status
    old_pending: int = 0


@dataclass
class Budget:
    """The rolling update's bounds: maxSurge and maxUnavailable resolved against `desired`, and
    the pod counts they allow (at most `max_total`, at least `min_required` available)."""

    max_surge: int = 0
    max_unavailable: int = 0
    max_total: int = 0
    min_required: int = 0


@dataclass(kw_only=True)
class Progress(Replicas, NewVersion, Budget):
    """One picture of a rollout: its status and message, the counts above, and which object
    (generation, resourceVersion, revision) and pods it was computed from. `as_dict()` is flat:
    the counts sit beside the rest, as pages, live messages and Workload.progress read them."""

    status: str
    message: str
    generation: int = 0
    observed_generation: int = 0
    # The Deployment object's resourceVersion: observers use it to drop an older picture
    # that arrives after a newer one (the watcher's cache and a direct read can race).
    resource_version: str = ""
    revision: str = ""
    image: str = ""
    images: dict = field(default_factory=dict)
    reason: str = ""
    paused: bool = False
    conditions: list = field(default_factory=list)
    pods: list = field(default_factory=list)
    name: str = ""
    new_hash: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _int_or_percent(value, total: int, round_up: bool) -> int:
    if value is None:
        value = "25%"
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        exact = int(text[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def fence_posts(deployment: dict) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas, with the controller's rounding."""
    spec = deployment.get("spec", {})
    replicas = spec.get("replicas", 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, replicas
    rolling = strategy.get("rollingUpdate") or {}
    surge = _int_or_percent(rolling.get("maxSurge"), replicas, round_up=True)
    unavailable = _int_or_percent(rolling.get("maxUnavailable"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def container_image(deployment: dict, container: str | None = None) -> str:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for c in containers:
        if container is None or c.get("name") == container:
            return c.get("image", "")
    return ""


def pod_summary(pod: dict) -> dict:
    status = pod.get("status", {})
    statuses = status.get("containerStatuses") or []
    waiting = next(
        (s["state"]["waiting"].get("reason", "") for s in statuses if (s.get("state") or {}).get("waiting")), ""
    )
    terminating = bool(pod.get("metadata", {}).get("deletionTimestamp"))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return {
        "name": pod["metadata"]["name"],
        "status": "Terminating" if terminating else (waiting or status.get("phase", "Pending")),
        # A container waiting (crash-looping, pulling) is not serving, whatever the condition says.
        "ready": ready and not waiting and not terminating,
        "restarts": sum(s.get("restartCount", 0) for s in statuses),
        "image": statuses[0].get("image", "") if statuses else _pod_image(pod),
        "hash": pod["metadata"].get("labels", {}).get("pod-template-hash", ""),
        "terminating": terminating,
    }


def _pod_image(pod: dict) -> str:
    containers = pod.get("spec", {}).get("containers") or [{}]
    return containers[0].get("image", "")


def _new_replicaset(deployment: dict, replicasets: list[dict]) -> dict | None:
    revision = deployment["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
    for rs in replicasets:
        if revision and (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") == revision:
            return rs
    return None


def compute(deployment: dict, replicasets: list[dict], pods: list[dict], container: str | None = None) -> Progress:
    spec, status, meta = deployment.get("spec", {}), deployment.get("status") or {}, deployment["metadata"]
    desired = spec.get("replicas", 1)
    surge, unavailable = fence_posts(deployment)
    conditions = status.get("conditions") or []
    progressing = next((c for c in conditions if c.get("type") == "Progressing"), {})
    new_rs = _new_replicaset(deployment, replicasets)
    new_hash = (new_rs or {}).get("metadata", {}).get("labels", {}).get("pod-template-hash")
    new_status = (new_rs or {}).get("status") or {}
    summaries = sorted((pod_summary(p) for p in pods), key=lambda p: (p["hash"] != new_hash, p["name"]))
    progress = Progress(
        status=PROGRESSING,
        message="",
        desired=desired,
        updated=status.get("updatedReplicas", 0),
        ready=status.get("readyReplicas", 0),
        available=status.get("availableReplicas", 0),
        total=status.get("replicas", 0),
        new_ready=sum(p["ready"] for p in summaries if p["hash"] == new_hash and not p["terminating"]),
        new_available=new_status.get("availableReplicas", 0),
        max_surge=surge,
        max_unavailable=unavailable,
        max_total=desired + surge,
        min_required=desired - unavailable,
        generation=meta.get("generation", 0),
        observed_generation=status.get("observedGeneration", 0),
        resource_version=str(meta.get("resourceVersion", "")),
        revision=meta.get("annotations", {}).get("deployment.kubernetes.io/revision", ""),
        image=container_image(deployment, container),
        images={
            c.get("name"): c.get("image", "") for c in spec.get("template", {}).get("spec", {}).get("containers", [])
        },
        reason=progressing.get("reason", ""),
        paused=bool(spec.get("paused")),
        conditions=conditions,
        pods=summaries,
    )
    progress.old_pending = max(progress.total - progress.updated, 0)
    progress.name = meta["name"]
    progress.new_hash = new_hash or ""
    progress.status, progress.message = _verdict(progress)
    return progress


def progressing_condition(conditions: list[dict]) -> dict:
    """The Progressing condition's reason and last update, to tell a later one from it."""
    condition = next((c for c in conditions or [] if c.get("type") == "Progressing"), {})
    return {"reason": condition.get("reason", ""), "lastUpdateTime": condition.get("lastUpdateTime", "")}


def judged_since(progress: Progress, baseline: dict) -> Progress:
    """`progress` judged only on what the cluster reported after a change was made.

    `baseline` is the Progressing condition as it was before the change. The controller keeps
    a ProgressDeadlineExceeded condition until the next rollout makes progress, so right after
    a rollback of a timed-out rollout it still reads as a failure: kubectl's `rollout status`
    would say so too. Until the condition is updated, it says nothing about this rollout.
    """
    if not baseline or progress.reason != "ProgressDeadlineExceeded":
        return progress
    if progressing_condition(progress.conditions) != baseline:
        return progress
    judged = replace(progress)
    judged.status, judged.message = _verdict(judged, deadline_counts=False)
    return judged


def _verdict(p: Progress, deadline_counts: bool = True) -> tuple[str, str]:
    name, new_hash = p.name, p.new_hash
    if p.generation > p.observed_generation:
        return WAITING, "Waiting for the cluster to see the new spec."
    if p.reason == "ProgressDeadlineExceeded" and deadline_counts:
        return FAILED, f'Deployment "{name}" exceeded its progress deadline.' + _stuck_pods(p, new_hash)
    stuck = _hopeless_pod(p, new_hash)
    if stuck:
        return FAILED, stuck
    if p.paused:
        return PROGRESSING, "The rollout is paused."
    if p.updated < p.desired:
        return PROGRESSING, f"{p.updated} of {p.desired} new replicas updated."
    if p.total > p.updated:
        return PROGRESSING, f"{p.old_pending} old replica{'s' if p.old_pending != 1 else ''} pending termination."
    if p.available < p.updated:
        return PROGRESSING, f"{p.available} of {p.updated} updated replicas available."
    unseen = _pods_not_seen(p, new_hash)
    if unseen:
        return PROGRESSING, unseen
    return COMPLETE, f'Deployment "{name}" successfully rolled out ({p.available}/{p.desired} available).'


def _pods_not_seen(p: Progress, new_hash: str | None) -> str:
    """The counts say complete: do the pods we were given say so too?

    The watcher's streams for Deployments and Pods deliver independently, so the Deployment can
    report success before the last pod changes arrive. The final picture must show every new pod
    ready and no old pod still running, so completion waits until the pods agree.
    """
    new = [pod for pod in p.pods if pod["hash"] == new_hash and not pod["terminating"]]
    old = [pod for pod in p.pods if pod["hash"] != new_hash and not pod["terminating"]]
    ready = sum(pod["ready"] for pod in new)
    if ready >= p.desired and not old:
        return ""
    return (
        f"Rolled out; waiting to see the pods settle ({ready} of {p.desired} new pods ready, {len(old)} old still up)."
    )


def _hopeless_pod(p: Progress, new_hash: str | None) -> str:
    for pod in p.pods:
        if pod["hash"] != new_hash or pod["terminating"]:
            continue
        if pod["status"] == "CrashLoopBackOff" and pod["restarts"] >= CRASH_RESTARTS:
            return f"Pod {pod['name']} is crash-looping (CrashLoopBackOff, {pod['restarts']} restarts)."
        if pod["status"] in HOPELESS - {"CrashLoopBackOff"}:
            return f"Pod {pod['name']} cannot start: {pod['status']} for image {pod['image']}."
    return ""


def _stuck_pods(p: Progress, new_hash: str | None) -> str:
    reasons = sorted({pod["status"] for pod in p.pods if pod["hash"] == new_hash and not pod["ready"]})
    return f" New pods: {', '.join(reasons)}." if reasons else ""
