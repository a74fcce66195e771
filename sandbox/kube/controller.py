"""Deployment controller, ReplicaSet controller and kubelet, run on one background thread.

The deployment controller follows kubernetes/kubernetes `pkg/controller/deployment` (see
PROTOCOLS.md §1.1); function names match the Go ones so the two can be read side by side.
The ReplicaSet controller creates and deletes pods to match `spec.replicas` and keeps the RS
status. The kubelet (kubelet.py) moves pods from Pending to Running and Ready after
`ready_after` seconds; image tags ending in `-crash` crash-loop with the kubelet's back-off and
tags ending in `-missing` fail to pull.

Every pass runs with the store lock held, in the order deployments → replicasets → pods, so a
pass never shows an RS whose spec shrank but whose pods were not yet deleted. Within the RS pass
all deletions happen before any creation, so the pod count never overshoots maxSurge. Deleted
pods are Terminating (no longer counted by their ReplicaSet) until the kubelet removes them.
"""

import copy
import json
import math
import random
import threading
import time
import traceback

from .events import EventRecorder
from .kubelet import NODE_NAME, SIDE, Kubelet
from .store import Cluster, now_iso, parse_iso

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
SKIP_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}
REV_HISTORY_LIMIT_CHARS = 2000


# ====================================================================== helpers
def safe_encode(text: str) -> str:
    """apimachinery `rand.SafeEncodeString`."""
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in text)


def compute_hash(template: dict, collision_count: int | None) -> str:
    """Stand-in for ComputeHash: FNV-32a over a canonical dump of the template (and the
    collisionCount), then SafeEncodeString of the decimal value. Deterministic, like the real
    one, though not byte-for-byte the same (that would need Go's spew output)."""
    data = json.dumps(template, sort_keys=True) + (str(collision_count) if collision_count else "")
    value = 0x811C9DC5
    for byte in data.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return safe_encode(str(value))


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(ALPHANUMS) for _ in range(n))


def spec_replicas(obj: dict) -> int:
    return (obj.get("spec") or {}).get("replicas", 1) or 0


def st(obj: dict, name: str) -> int:
    return (obj.get("status") or {}).get(name, 0) or 0


def annotations(obj: dict) -> dict:
    return obj["metadata"].setdefault("annotations", {})


def revision(rs: dict) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def created_key(obj: dict):
    return (obj["metadata"]["creationTimestamp"], obj["metadata"]["name"])


def is_controlled_by(obj: dict, owner: dict) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def owner_ref(owner: dict) -> dict:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def int_or_percent(value, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value or 0)


def is_rolling(d: dict) -> bool:
    return d["spec"]["strategy"]["type"] == "RollingUpdate"


def resolve_fenceposts(d: dict) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as absolute numbers: surge rounds up, unavailable down."""
    rolling = d["spec"]["strategy"].get("rollingUpdate") or {}
    replicas = spec_replicas(d)
    surge = int_or_percent(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: dict) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: dict) -> int:
    if not is_rolling(d) or spec_replicas(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], spec_replicas(d))


def template_without_hash(template: dict) -> dict:
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return template


def equal_ignore_hash(a: dict, b: dict) -> bool:
    return template_without_hash(a) == template_without_hash(b)


def filter_active(rss: list[dict]) -> list[dict]:
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def get_condition(status: dict, type_: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def new_condition(type_: str, status: str, reason: str, message: str) -> dict:
    now = now_iso()
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def set_condition(status: dict, condition: dict) -> None:
    """SetDeploymentCondition: no-op when status and reason are unchanged."""
    current = get_condition(status, condition["type"])
    if current and current["status"] == condition["status"]:
        if current["reason"] == condition["reason"]:
            return
        condition["lastTransitionTime"] = current["lastTransitionTime"]
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: dict, type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != type_]


def has_progress_deadline(d: dict) -> bool:
    deadline = d["spec"].get("progressDeadlineSeconds")
    return deadline is not None and deadline != 2**31 - 1


# ================================================================== controllers
class Controllers:
    """Runs the deployment and ReplicaSet controllers and the kubelet on one thread.

    A pass runs after every write, and otherwise when something changes with time alone (a pod
    becomes ready, a container crashes, a progress deadline passes, an event expires): each pass
    works out the earliest such moment and the thread sleeps until then, so an idle cluster costs
    no CPU."""

    def __init__(
        self,
        cluster: Cluster,
        ready_after: float = 2.0,
        crash_backoff: float = 10.0,
        terminate_after: float | None = None,
    ):
        self.cluster = cluster
        self.events = EventRecorder(cluster)
        self.kubelet = Kubelet(cluster, self.events, ready_after, crash_backoff, terminate_after)
        self.thread = threading.Thread(target=self._run, name="kube-controllers", daemon=True)
        self._stop = False
        self.paused = False  # frozen while the API server is down (KubeSandbox.pause_http)
        self.wake_at: float | None = None  # the next time-based change, found by a pass
        self.passes = 0
        self.asleep = False  # waiting for a write or wake_at (read under the cluster lock)

    def start(self) -> "Controllers":
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cluster.lock:
            self._stop = True
            self.cluster.changed.notify_all()
        self.thread.join(timeout=5)

    def wake(self, at: float | None) -> None:
        """Ask for a pass at `at` (epoch seconds) at the latest."""
        if at is not None and (self.wake_at is None or at < self.wake_at):
            self.wake_at = at

    def _run(self) -> None:
        cluster = self.cluster
        while True:
            with cluster.lock:
                if self._stop or cluster.closed:
                    return
                if self.paused:
                    cluster.changed.wait()  # resume_http() notifies
                    continue
                before = cluster.rv
                self.wake_at = None
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - keep the fake cluster alive; the tests will notice
                    traceback.print_exc()
                    self.wake(time.time() + 1)
                if cluster.rv == before:
                    # Nothing changed: sleep until a write or the next time-based change.
                    timeout = None if self.wake_at is None else max(0.0, self.wake_at - time.time()) + 0.001
                    self.asleep = True
                    cluster.changed.wait(timeout)
                    self.asleep = False
                    continue
            # Something changed: run again at once, but let waiting HTTP requests in first.
            time.sleep(0.001)

    def run_once(self) -> None:
        """One reconcile pass over everything (caller holds the lock)."""
        self.passes += 1
        for d in sorted(self.cluster.raw("deployments"), key=created_key):
            DeploymentSync(self, copy.deepcopy(d)).sync()
        rss = [copy.deepcopy(rs) for rs in self.cluster.raw("replicasets")]
        plans = [(rs, self._rs_pods(rs)) for rs in rss]
        for rs, pods in plans:  # all deletions first, so the pod count never overshoots
            self._rs_delete_extra(rs, pods)
        for rs, pods in plans:
            self._rs_create_missing(rs, pods)
        for pod in list(self.cluster.raw("pods")):
            self.wake(self.kubelet.sync(pod))
        for rs in self.cluster.raw("replicasets"):
            self._rs_sync_status(copy.deepcopy(rs))
        self.wake(self.events.expire())

    # ----------------------------------------------------------- events
    def record_event(self, obj: dict, type_: str, reason: str, message: str, component: str):
        self.events.record(obj, type_, reason, message, component)

    # ------------------------------------------------------- replicasets
    def _rs_pods(self, rs: dict) -> list[dict]:
        return [
            pod
            for pod in self.cluster.raw("pods", rs["metadata"]["namespace"])
            if is_controlled_by(pod, rs) and not pod["metadata"].get("deletionTimestamp")
        ]

    def _rs_delete_extra(self, rs: dict, pods: list[dict]) -> None:
        extra = len(pods) - spec_replicas(rs)
        if extra <= 0:
            return
        min_ready = rs["spec"].get("minReadySeconds", 0)

        def rank(pod):  # getPodsToDelete: not ready, then not available, then newest first
            return (
                self.kubelet.is_ready(pod),
                self.kubelet.is_available(pod, min_ready),
                -self.cluster.side.get(SIDE, {}).get(pod["metadata"]["uid"], {}).get("seen", 0),
            )

        for pod in sorted(pods, key=rank)[:extra]:
            self.cluster.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
            self.record_event(
                rs,
                "Normal",
                "SuccessfulDelete",
                f"Deleted pod: {pod['metadata']['name']}",
                "replicaset-controller",
            )

    def _rs_create_missing(self, rs: dict, pods: list[dict]) -> None:
        if self.cluster.find("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"]) is None:
            return  # deleted meanwhile
        for _ in range(spec_replicas(rs) - len(pods)):
            template = rs["spec"]["template"]
            meta = template.get("metadata") or {}
            name = f"{rs['metadata']['name']}-{random_suffix()}"
            pod = {
                "metadata": {
                    "name": name,
                    "generateName": rs["metadata"]["name"] + "-",
                    "labels": copy.deepcopy(meta.get("labels") or {}),
                    "annotations": copy.deepcopy(meta.get("annotations") or {}),
                    "ownerReferences": [owner_ref(rs)],
                },
                "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": NODE_NAME},
                "status": {"phase": "Pending"},
            }
            if not pod["metadata"]["annotations"]:
                del pod["metadata"]["annotations"]
            self.cluster.create("pods", rs["metadata"]["namespace"], pod, manager="kube-controller-manager")
            self.record_event(rs, "Normal", "SuccessfulCreate", f"Created pod: {name}", "replicaset-controller")

    def _rs_sync_status(self, rs: dict) -> None:
        pods = self._rs_pods(rs)
        template_labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        min_ready = rs["spec"].get("minReadySeconds", 0)
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                all(p["metadata"].get("labels", {}).get(k) == v for k, v in template_labels.items()) for p in pods
            ),
            "readyReplicas": sum(self.kubelet.is_ready(p) for p in pods),
            "availableReplicas": sum(self.kubelet.is_available(p, min_ready) for p in pods),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        for pod in pods:  # a Ready pod becomes available minReadySeconds later
            since = self.kubelet.ready_since(pod)
            if since is not None and not self.kubelet.is_available(pod, min_ready):
                self.wake(since + min_ready)
        # Like the Go struct with omitempty: zero counts are left out.
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if status != rs.get("status"):
            rs["status"] = status
            self.cluster.update(rs)


class DeploymentSync:
    """One syncDeployment call for one deployment (deployment_controller.go / sync.go)."""

    def __init__(self, controllers: Controllers, d: dict):
        self.c = controllers
        self.cluster = controllers.cluster
        self.d = d

    # ------------------------------------------------------------ plumbing
    def _event(self, reason: str, message: str, type_: str = "Normal") -> None:
        self.c.record_event(self.d, type_, reason, message, "deployment-controller")

    def _write_deployment(self) -> None:
        self.d = self.cluster.update(self.d)

    def _rs_list(self) -> list[dict]:
        return [
            copy.deepcopy(rs)
            for rs in self.cluster.raw("replicasets", self.d["metadata"]["namespace"])
            if is_controlled_by(rs, self.d)
        ]

    # ---------------------------------------------------------------- sync
    def sync(self) -> None:
        d = self.d
        if d["metadata"].get("deletionTimestamp"):
            return
        rs_list = self._rs_list()
        self.check_paused_conditions()
        if d["spec"].get("paused"):
            return self.sync_scale(rs_list)
        if self.is_scaling_event(rs_list):
            return self.sync_scale(rs_list)
        if is_rolling(d):
            return self.rollout_rolling(rs_list)
        return self.rollout_recreate(rs_list)

    def check_paused_conditions(self) -> None:
        d = self.d
        if not has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = get_condition(status, "Progressing")
        if cond and cond["reason"] == "ProgressDeadlineExceeded":
            return
        paused_cond = cond is not None and cond["reason"] == "DeploymentPaused"
        if d["spec"].get("paused") and not paused_cond:
            set_condition(
                status,
                new_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"),
            )
        elif not d["spec"].get("paused") and paused_cond:
            set_condition(
                status,
                new_condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed"),
            )
        else:
            return
        self._write_deployment()

    def is_scaling_event(self, rs_list: list[dict]) -> bool:
        new_rs, old_rss = self.get_all_replica_sets_and_sync_revision(rs_list, create=False)
        for rs in filter_active([*old_rss, new_rs]):
            desired = (rs["metadata"].get("annotations") or {}).get(DESIRED)
            if desired is not None and int(desired) != spec_replicas(self.d):
                return True
        return False

    def sync_scale(self, rs_list: list[dict]) -> None:
        """sync(): scale only, then clean up (when paused) and update the status."""
        new_rs, old_rss = self.get_all_replica_sets_and_sync_revision(rs_list, create=False)
        new_rs, old_rss = self.scale(new_rs, old_rss)
        if self.d["spec"].get("paused"):
            self.cleanup_deployment(old_rss)
        self.sync_deployment_status([*old_rss, new_rs], new_rs)

    # ---------------------------------------------------- new/old RS lookup
    def get_all_replica_sets_and_sync_revision(self, rs_list: list[dict], create: bool):
        template = self.d["spec"]["template"]
        new_rs = next(
            (rs for rs in sorted(rs_list, key=created_key) if equal_ignore_hash(rs["spec"]["template"], template)),
            None,
        )
        old_rss = [rs for rs in rs_list if rs is not new_rs]
        new_rs = self.get_new_replica_set(new_rs, old_rss, create)
        return new_rs, old_rss

    def get_new_replica_set(self, existing: dict | None, old_rss: list[dict], create: bool):
        d = self.d
        new_revision = str(max([revision(rs) for rs in old_rss], default=0) + 1)
        if existing is not None:
            rs = copy.deepcopy(existing)
            changed = self.set_new_replica_set_annotations(rs, new_revision, exists=True)
            min_ready = d["spec"].get("minReadySeconds", 0)
            if changed or rs["spec"].get("minReadySeconds", 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                rs = self.cluster.update(rs)
            needs_update = self.set_deployment_revision(annotations(rs).get(REVISION, ""))
            status = d.setdefault("status", {})
            if has_progress_deadline(d) and get_condition(status, "Progressing") is None:
                name = rs["metadata"]["name"]
                set_condition(
                    status,
                    new_condition(
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        f'Found new replica set "{name}"',
                    ),
                )
                needs_update = True
            if needs_update:
                self._write_deployment()
            return rs
        if not create:
            return None
        return self.create_new_replica_set(old_rss, new_revision)

    def create_new_replica_set(self, old_rss: list[dict], new_revision: str) -> dict:
        d = self.d
        template = copy.deepcopy(d["spec"]["template"])
        pod_hash = compute_hash(template, (d.get("status") or {}).get("collisionCount"))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        name = f"{d['metadata']['name']}-{pod_hash}"
        rs = {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": name,
                "namespace": d["metadata"]["namespace"],
                "labels": copy.deepcopy(template["metadata"]["labels"]),
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        rs["spec"]["replicas"] = self.new_rs_new_replicas([*old_rss, rs], rs)
        self.set_new_replica_set_annotations(rs, new_revision, exists=False)
        rs = self.cluster.create("replicasets", d["metadata"]["namespace"], rs, manager="kube-controller-manager")
        if spec_replicas(rs) > 0:
            self._event("ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {spec_replicas(rs)}")
        self.set_deployment_revision(new_revision)
        if has_progress_deadline(d):
            set_condition(
                d.setdefault("status", {}),
                new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    f'Created new replica set "{name}"',
                ),
            )
        self._write_deployment()
        return rs

    def set_new_replica_set_annotations(self, rs: dict, new_revision: str, exists: bool) -> bool:
        d = self.d
        ann = annotations(rs)
        changed = False
        for key, value in (d["metadata"].get("annotations") or {}).items():
            if key not in SKIP_ANNOTATIONS and ann.get(key) != value:
                ann[key] = value
                changed = True
        old_revision = ann.get(REVISION)
        try:
            old_int = int(old_revision) if old_revision else 0
        except ValueError:
            return False
        if old_int < int(new_revision):
            ann[REVISION] = new_revision
            changed = True
        if old_revision and old_int < int(new_revision):
            # An existing RS got a new revision: a rollback. Keep the old numbers.
            history = ann.get(REVISION_HISTORY, "")
            olds = history.split(",") if history else []
            total = len(history) + len(old_revision) + 1
            start = 0
            while total > REV_HISTORY_LIMIT_CHARS and start < len(olds):
                total -= len(olds[start]) + 1
                start += 1
            if total <= REV_HISTORY_LIMIT_CHARS:
                ann[REVISION_HISTORY] = ",".join([*olds[start:], old_revision])
        if not exists and self.set_replicas_annotations(rs):
            changed = True
        return changed

    def set_replicas_annotations(self, rs: dict) -> bool:
        ann = annotations(rs)
        desired = str(spec_replicas(self.d))
        maximum = str(spec_replicas(self.d) + max_surge(self.d))
        if ann.get(DESIRED) == desired and ann.get(MAX_REPLICAS) == maximum:
            return False
        ann[DESIRED], ann[MAX_REPLICAS] = desired, maximum
        return True

    def set_deployment_revision(self, value: str) -> bool:
        ann = annotations(self.d)
        if ann.get(REVISION) == value:
            return False
        ann[REVISION] = value
        return True

    def new_rs_new_replicas(self, all_rss: list[dict], new_rs: dict) -> int:
        d = self.d
        if not is_rolling(d):
            return spec_replicas(d)
        current = sum(spec_replicas(rs) for rs in all_rss)
        max_total = spec_replicas(d) + max_surge(d)
        if current >= max_total:
            return spec_replicas(new_rs)
        scale_up = min(max_total - current, spec_replicas(d) - spec_replicas(new_rs))
        return spec_replicas(new_rs) + scale_up

    # -------------------------------------------------------------- scaling
    def scale_replica_set(self, rs: dict, new_scale: int) -> dict:
        """scaleReplicaSetAndRecordEvent / scaleReplicaSet."""
        old_scale = spec_replicas(rs)
        size_changed = old_scale != new_scale
        rs = copy.deepcopy(rs)
        annotations_changed = self.set_replicas_annotations(rs)
        if not size_changed and not annotations_changed:
            return rs
        rs["spec"]["replicas"] = new_scale
        rs = self.cluster.update(rs)
        if size_changed:
            direction = "up" if new_scale > old_scale else "down"
            self._event(
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} from {old_scale} to {new_scale}",
            )
        return rs

    def scale(self, new_rs: dict | None, old_rss: list[dict]):
        """sync.go scale(): proportional scaling of all active RSs. Returns updated RSs."""
        d = self.d
        replicas = spec_replicas(d)
        updated = {}
        active_or_latest = self.find_active_or_latest(new_rs, old_rss)
        if active_or_latest is not None:
            if spec_replicas(active_or_latest) != replicas:
                rs = self.scale_replica_set(active_or_latest, replicas)
                updated[rs["metadata"]["name"]] = rs
        elif self.is_saturated(new_rs):
            for rs in filter_active(old_rss):
                rs = self.scale_replica_set(rs, 0)
                updated[rs["metadata"]["name"]] = rs
        elif is_rolling(d):
            updated = self.scale_proportionally(new_rs, old_rss)

        def fresh(rs):
            return None if rs is None else updated.get(rs["metadata"]["name"], rs)

        return fresh(new_rs), [fresh(rs) for rs in old_rss]

    def scale_proportionally(self, new_rs: dict | None, old_rss: list[dict]) -> dict:
        d = self.d
        all_rss = filter_active([*old_rss, new_rs])
        allowed = spec_replicas(d) + max_surge(d) if spec_replicas(d) > 0 else 0
        to_add = allowed - sum(spec_replicas(rs) for rs in all_rss)
        if to_add > 0:  # ReplicaSetsBySizeNewer
            all_rss.sort(key=created_key, reverse=True)
            all_rss.sort(key=spec_replicas, reverse=True)
        elif to_add < 0:  # ReplicaSetsBySizeOlder
            all_rss.sort(key=created_key)
            all_rss.sort(key=spec_replicas, reverse=True)
        added = 0
        sizes = {}
        for rs in all_rss:
            proportion = self.get_proportion(rs, to_add, added) if to_add else 0
            sizes[rs["metadata"]["name"]] = spec_replicas(rs) + proportion
            added += proportion
        if to_add and all_rss:
            first = all_rss[0]["metadata"]["name"]
            sizes[first] = max(0, sizes[first] + to_add - added)
        return {rs["metadata"]["name"]: self.scale_replica_set(rs, sizes[rs["metadata"]["name"]]) for rs in all_rss}

    def get_proportion(self, rs: dict, to_add: int, added: int) -> int:
        if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        fraction = self.get_replica_set_fraction(rs)
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    def get_replica_set_fraction(self, rs: dict) -> int:
        d = self.d
        if spec_replicas(d) == 0:
            return -spec_replicas(rs)
        deployment_replicas = spec_replicas(d) + max_surge(d)
        try:
            annotated = int(annotations(rs)[MAX_REPLICAS])
        except (KeyError, ValueError):
            annotated = st(d, "replicas")
        if annotated == 0:
            return 0
        new_size = spec_replicas(rs) * deployment_replicas / annotated
        rounded = math.floor(new_size + 0.5) if new_size >= 0 else math.ceil(new_size - 0.5)
        return int(rounded) - spec_replicas(rs)

    def find_active_or_latest(self, new_rs, old_rss):
        if new_rs is None and not old_rss:
            return None
        old_sorted = sorted(old_rss, key=created_key, reverse=True)
        active = filter_active([*old_sorted, new_rs])
        if len(active) == 0:
            return new_rs if new_rs is not None else old_sorted[0]
        if len(active) == 1:
            return active[0]
        return None

    def is_saturated(self, rs: dict | None) -> bool:
        if rs is None:
            return False
        desired = (rs["metadata"].get("annotations") or {}).get(DESIRED)
        replicas = spec_replicas(self.d)
        return desired == str(replicas) and st(rs, "availableReplicas") == replicas and spec_replicas(rs) == replicas

    # -------------------------------------------------------------- rolling
    def rollout_rolling(self, rs_list: list[dict]) -> None:
        new_rs, old_rss = self.get_all_replica_sets_and_sync_revision(rs_list, create=True)
        all_rss = [*old_rss, new_rs]
        scaled, new_rs = self.reconcile_new_replica_set(all_rss, new_rs)
        if scaled:
            return self.sync_rollout_status([*old_rss, new_rs], new_rs)
        scaled, old_rss = self.reconcile_old_replica_sets(filter_active(old_rss), old_rss, new_rs)
        if scaled:
            return self.sync_rollout_status([*old_rss, new_rs], new_rs)
        if self.deployment_complete(self.d.get("status") or {}):
            self.cleanup_deployment(old_rss)
        return self.sync_rollout_status([*old_rss, new_rs], new_rs)

    def reconcile_new_replica_set(self, all_rss: list[dict], new_rs: dict):
        replicas = spec_replicas(self.d)
        if spec_replicas(new_rs) == replicas:
            return False, new_rs
        if spec_replicas(new_rs) > replicas:
            return True, self.scale_replica_set(new_rs, replicas)
        count = self.new_rs_new_replicas(all_rss, new_rs)
        if count == spec_replicas(new_rs):
            return False, new_rs
        return True, self.scale_replica_set(new_rs, count)

    def reconcile_old_replica_sets(self, active_old: list[dict], old_rss: list[dict], new_rs):
        d = self.d
        if sum(spec_replicas(rs) for rs in active_old) == 0:
            return False, old_rss
        all_pods = sum(spec_replicas(rs) for rs in [*active_old, new_rs])
        min_available = spec_replicas(d) - max_unavailable(d)
        new_unavailable = spec_replicas(new_rs) - st(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False, old_rss
        updated: dict[str, dict] = {}
        active_old, cleaned = self.cleanup_unhealthy_replicas(active_old, max_scaled_down, updated)
        scaled = self.scale_down_old_for_rolling_update([*active_old, new_rs], active_old, updated)
        old_rss = [updated.get(rs["metadata"]["name"], rs) for rs in old_rss]
        return cleaned + scaled > 0, old_rss

    def cleanup_unhealthy_replicas(self, old_rss: list[dict], max_cleanup: int, updated: dict):
        old_rss = sorted(old_rss, key=created_key)
        total = 0
        for i, rs in enumerate(old_rss):
            if total >= max_cleanup:
                break
            unhealthy = spec_replicas(rs) - st(rs, "availableReplicas")
            if spec_replicas(rs) == 0 or unhealthy <= 0:
                continue
            count = min(max_cleanup - total, unhealthy)
            old_rss[i] = updated[rs["metadata"]["name"]] = self.scale_replica_set(rs, spec_replicas(rs) - count)
            total += count
        return old_rss, total

    def scale_down_old_for_rolling_update(self, all_rss, old_rss, updated: dict) -> int:
        d = self.d
        min_available = spec_replicas(d) - max_unavailable(d)
        available = sum(st(rs, "availableReplicas") for rs in all_rss if rs is not None)
        if available <= min_available:
            return 0
        to_scale_down = available - min_available
        total = 0
        for rs in sorted(old_rss, key=created_key):
            if total >= to_scale_down:
                break
            if spec_replicas(rs) == 0:
                continue
            count = min(spec_replicas(rs), to_scale_down - total)
            updated[rs["metadata"]["name"]] = self.scale_replica_set(rs, spec_replicas(rs) - count)
            total += count
        return total

    # ------------------------------------------------------------- recreate
    def rollout_recreate(self, rs_list: list[dict]) -> None:
        new_rs, old_rss = self.get_all_replica_sets_and_sync_revision(rs_list, create=False)
        active_old = filter_active(old_rss)
        if active_old:
            old_rss = [self.scale_replica_set(rs, 0) if spec_replicas(rs) else rs for rs in old_rss]
            return self.sync_rollout_status([*old_rss, new_rs], new_rs)
        if self.old_pods_running(old_rss):
            return self.sync_rollout_status([*old_rss, new_rs], new_rs)
        if new_rs is None:
            new_rs, old_rss = self.get_all_replica_sets_and_sync_revision(self._rs_list(), create=True)
        if spec_replicas(new_rs) != spec_replicas(self.d):
            new_rs = self.scale_replica_set(new_rs, spec_replicas(self.d))
        if self.deployment_complete(self.d.get("status") or {}):
            self.cleanup_deployment(old_rss)
        return self.sync_rollout_status([*old_rss, new_rs], new_rs)

    def old_pods_running(self, old_rss: list[dict]) -> bool:
        if sum(st(rs, "replicas") for rs in old_rss) > 0:
            return True
        return any(
            is_controlled_by(pod, rs)
            for rs in old_rss
            for pod in self.cluster.raw("pods", self.d["metadata"]["namespace"])
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
        )

    # -------------------------------------------------------------- cleanup
    def cleanup_deployment(self, old_rss: list[dict]) -> None:
        limit = self.d["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        cleanable = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        diff = len(cleanable) - limit
        if diff <= 0:
            return
        cleanable.sort(key=lambda rs: (revision(rs), created_key(rs)))
        for rs in cleanable[:diff]:
            if st(rs, "replicas") or spec_replicas(rs):
                continue
            if rs["metadata"].get("generation", 1) > st(rs, "observedGeneration"):
                continue
            meta = rs["metadata"]
            if self.cluster.find("replicasets", meta["namespace"], meta["name"]) is not None:
                self.cluster.delete("replicasets", meta["namespace"], meta["name"])

    # --------------------------------------------------------------- status
    def calculate_status(self, all_rss: list[dict], new_rs: dict | None) -> dict:
        d = self.d
        all_rss = [rs for rs in all_rss if rs is not None]
        available = sum(st(rs, "availableReplicas") for rs in all_rss)
        total = sum(spec_replicas(rs) for rs in all_rss)
        old_status = d.get("status") or {}
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(st(rs, "replicas") for rs in all_rss),
            "updatedReplicas": st(new_rs, "replicas") if new_rs else 0,
            "readyReplicas": sum(st(rs, "readyReplicas") for rs in all_rss),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
            "conditions": copy.deepcopy(old_status.get("conditions") or []),
        }
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]
        if available >= spec_replicas(d) - max_unavailable(d):
            condition = new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            condition = new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        set_condition(status, condition)
        return status

    def deployment_complete(self, status: dict) -> bool:
        replicas = spec_replicas(self.d)
        return (
            status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and status.get("observedGeneration", 0) >= self.d["metadata"].get("generation", 1)
        )

    def deployment_progressing(self, new: dict) -> bool:
        old = self.d.get("status") or {}
        old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
        new_old = new["replicas"] - new["updatedReplicas"]
        return (
            new["updatedReplicas"] > old.get("updatedReplicas", 0)
            or new_old < old_old
            or new["readyReplicas"] > old.get("readyReplicas", 0)
            or new["availableReplicas"] > old.get("availableReplicas", 0)
        )

    def deployment_timed_out(self, status: dict) -> bool:
        if not has_progress_deadline(self.d):
            return False
        cond = get_condition(status, "Progressing")
        if cond is None or cond["reason"] == "NewReplicaSetAvailable":
            return False
        if cond["reason"] == "ProgressDeadlineExceeded":
            return True
        deadline = parse_iso(cond["lastUpdateTime"]).timestamp() + self.d["spec"]["progressDeadlineSeconds"]
        if deadline < time.time():
            return True
        self.c.wake(deadline + 1)  # timestamps have whole seconds
        return False

    def sync_rollout_status(self, all_rss: list[dict], new_rs: dict | None) -> None:
        d = self.d
        status = self.calculate_status(all_rss, new_rs)
        if not has_progress_deadline(d):
            remove_condition(status, "Progressing")
        current = get_condition(status, "Progressing")
        complete = (
            status["replicas"] == status["updatedReplicas"]
            and current is not None
            and current["reason"] == "NewReplicaSetAvailable"
        )
        rs_name = new_rs["metadata"]["name"] if new_rs else None
        if has_progress_deadline(d) and not complete:
            if self.deployment_complete(status):
                message = (
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if rs_name
                    else "Deployment has successfully progressed."
                )
                set_condition(
                    status,
                    new_condition("Progressing", "True", "NewReplicaSetAvailable", message),
                )
            elif self.deployment_progressing(status):
                message = f'ReplicaSet "{rs_name}" is progressing.' if rs_name else "Deployment is progressing."
                condition = new_condition("Progressing", "True", "ReplicaSetUpdated", message)
                if current is not None:
                    if current["status"] == "True":
                        condition["lastTransitionTime"] = current["lastTransitionTime"]
                    remove_condition(status, "Progressing")
                set_condition(status, condition)
            elif self.deployment_timed_out(status):
                message = (
                    f'ReplicaSet "{rs_name}" has timed out progressing.'
                    if rs_name
                    else "Deployment has timed out progressing."
                )
                set_condition(
                    status,
                    new_condition("Progressing", "False", "ProgressDeadlineExceeded", message),
                )
        self._update_status(status)

    def sync_deployment_status(self, all_rss: list[dict], new_rs: dict | None) -> None:
        self._update_status(self.calculate_status(all_rss, new_rs))

    def _update_status(self, status: dict) -> None:
        # Go's omitempty: zero counters are not serialised.
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        if status != self.d.get("status"):
            self.d["status"] = status
            self._write_deployment()
