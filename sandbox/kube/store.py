"""The object store of the fake Kubernetes API server.

One `Cluster` holds every object as a plain dict, keyed by (resource, namespace, name). It does
the apiserver's bookkeeping: uid, creationTimestamp, one global resourceVersion counter bumped on
every write, `metadata.generation` bumped only when `spec` changes, defaults for Deployments,
cascading deletion through ownerReferences, and the watch fan-out.

Concurrency: one re-entrant lock (`cluster.lock`) guards everything. Writers never block on a
watcher: each watcher owns an unbounded queue that the writer appends to. A condition variable
(`cluster.changed`) on the same lock wakes the controllers after every write.

Every committed write is also appended to a bounded history (the last `history_size` events) so a
watch can resume from a resourceVersion; a watch from a resourceVersion older than the history
gets `410 Expired`, like an apiserver after etcd compaction.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import ApiError, expired, invalid, not_found
from .selectors import parse_field_selector, parse_label_selector


@dataclass(frozen=True)
class Kind:
    """Static description of one resource type (what discovery also reports)."""

    resource: str
    kind: str
    group: str  # "" for the core group
    namespaced: bool
    short_names: tuple[str, ...]
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def qualified(self) -> str:
        """`deployments.apps` / `pods`: how error messages name the resource."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


KINDS = {
    k.resource: k
    for k in (
        Kind("deployments", "Deployment", "apps", True, ("deploy",), ("scale", "status")),
        Kind("replicasets", "ReplicaSet", "apps", True, ("rs",), ("scale", "status")),
        Kind("pods", "Pod", "", True, ("po",), ("status",)),
        Kind("namespaces", "Namespace", "", False, ("ns",), ("status",)),
        Kind("events", "Event", "", True, ("ev",)),
    )
}
# Resources with a spec whose changes bump metadata.generation.
GENERATION_RESOURCES = {"deployments", "replicasets"}
# Resources whose create strategy throws away a status sent on create (PrepareForCreate).
STATUS_RESET_ON_CREATE = {"deployments", "replicasets", "pods"}
DEFAULT_HISTORY = 1000


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass
class WatchEvent:
    """One committed write, as kept in the history and queued to watchers."""

    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    resource: str
    namespace: str
    obj: dict
    old: dict | None = None  # the previous version, to notice selector transitions


@dataclass
class Watcher:
    """A watch registration: the store pushes events, the HTTP handler drains `events`."""

    resource: str
    namespace: str | None
    events: queue.Queue = field(default_factory=queue.Queue)
    # The watch's starting resourceVersion: like the watch cache, only newer events (and
    # bookmarks) are sent, which matters when it is ahead of the store (see Cluster.watch).
    since: int = 0

    def wants(self, event: WatchEvent) -> bool:
        if event.resource != self.resource:
            return False
        return self.namespace is None or event.namespace == self.namespace


def matches(obj: dict, labels=None, fields=None) -> bool:
    """Apply parsed label/field selectors (callables from selectors.py) to an object."""
    if labels is not None and not labels(obj.get("metadata", {}).get("labels") or {}):
        return False
    return fields is None or fields(obj)


def apply_deployment_defaults(obj: dict) -> None:
    """SetDefaults_Deployment (apps/v1)."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    else:
        strategy.pop("rollingUpdate", None)


def apply_pod_spec_defaults(spec: dict) -> None:
    """SetDefaults_PodSpec / SetDefaults_Container: what a typed client echoes back, so a
    template that round-trips through kubectl (e.g. `rollout undo`) still compares equal."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        image = container.get("image", "")
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        container.setdefault("imagePullPolicy", "IfNotPresent" if tagged else "Always")
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def pod_qos_class(spec: dict) -> str:
    """qos.GetPodQOS, simplified to cpu and memory: Guaranteed when every container limits both and
    requests (if given) equal the limits, BestEffort when no container asks for anything."""
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        if any(name not in limits or requests.get(name, limits[name]) != limits[name] for name in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def initial_status(resource: str, obj: dict) -> dict:
    """The status PrepareForCreate leaves on a new object (clients cannot set status on create)."""
    if resource == "pods":
        return {"phase": "Pending", "qosClass": pod_qos_class(obj.get("spec") or {})}
    return {}


def apply_status_defaults(resource: str, obj: dict) -> None:
    """What Go's JSON encoding always writes: apps/v1 ReplicaSetStatus.replicas has no omitempty,
    so a ReplicaSet is served with `status.replicas` (0) even before its controller saw it (the
    typed Python client refuses one without it). DeploymentStatus and PodStatus fields are all
    omitempty: `status: {}` is what a new Deployment really looks like."""
    if resource == "replicasets":
        status = obj.get("status")
        if not isinstance(status, dict):
            status = obj["status"] = {}
        status.setdefault("replicas", 0)


def strip_nulls(value):
    """JSON nulls in a request body mean "zero value" to a Go server: drop them."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def validate_workload(kind: Kind, obj: dict) -> None:
    """The few apps/v1 validations that clients actually run into."""
    name = obj["metadata"]["name"]
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    causes = []
    if not selector and not (spec.get("selector") or {}).get("matchExpressions"):
        causes.append(("spec.selector", "Required value"))
    elif any(template_labels.get(k) != v for k, v in selector.items()):
        causes.append(("spec.template.metadata.labels", "Invalid value: `selector` does not match template"))
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        causes.append(("spec.template.spec.containers", "Required value"))
    if (spec.get("replicas") or 0) < 0:
        causes.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
    if causes:
        raise invalid(kind, name, causes)


class Objects(dict):
    """{(resource, namespace, name): object}, plus a per-resource index so that lookups of one
    resource do not scan every stored event and pod."""

    def __init__(self):
        super().__init__()
        self.by_resource: dict[str, dict[tuple[str, str], dict]] = {k: {} for k in KINDS}

    def __setitem__(self, key, obj):
        super().__setitem__(key, obj)
        self.by_resource[key[0]][key[1:]] = obj

    def __delitem__(self, key):
        super().__delitem__(key)
        del self.by_resource[key[0]][key[1:]]

    def of(self, resource: str, namespace: str | None = None, ordered: bool = False):
        """The objects of one resource (optionally one namespace), as ((ns, name), obj)."""
        items = self.by_resource[resource].items()
        if ordered:
            items = sorted(items)
        return [(k, obj) for k, obj in items if namespace is None or k[0] == namespace]


class Cluster:
    """All objects plus resourceVersion, history and watchers. See the module docstring."""

    def __init__(self, history_size: int = DEFAULT_HISTORY):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects = Objects()
        self.rv = 0
        self.history: deque[WatchEvent] = deque()
        self.history_size = history_size
        self.compacted_rv = 0  # watches from an RV below this get 410 Expired
        self.watchers: list[Watcher] = []
        self.observers: list = []  # callables(cluster, WatchEvent), run under the lock
        self.closed = False
        self.create("namespaces", "", {"metadata": {"name": "default"}})

    # ----------------------------------------------------------------- reads
    def kind(self, resource: str) -> Kind:
        return KINDS[resource]

    def get(self, resource: str, namespace: str, name: str) -> dict:
        with self.lock:
            obj = self.objects.get((resource, namespace or "", name))
            if obj is None:
                raise not_found(KINDS[resource], name)
            return copy.deepcopy(obj)

    def find(self, resource: str, namespace: str, name: str) -> dict | None:
        """Like get() but returns None (and no copy: callers must not mutate)."""
        return self.objects.get((resource, namespace or "", name))

    def list(
        self, resource: str, namespace: str | None = None, label_selector=None, field_selector=None
    ) -> tuple[list[dict], str]:
        """Objects sorted by namespace/name, and the list resourceVersion."""
        labels = parse_label_selector(label_selector) if label_selector else None
        fields = parse_field_selector(field_selector) if field_selector else None
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for _, obj in self.objects.of(resource, namespace, ordered=True)
                if matches(obj, labels, fields)
            ]
            return items, str(self.rv)

    def raw(self, resource: str, namespace: str | None = None) -> list[dict]:
        """The stored dicts themselves (no copies), for code already holding the lock."""
        return [obj for _, obj in self.objects.of(resource, namespace)]

    # ---------------------------------------------------------------- writes
    def create(self, resource: str, namespace: str, obj: dict) -> dict:
        kind = KINDS[resource]
        obj = strip_nulls(obj)
        meta = obj.setdefault("metadata", {})
        namespace = namespace if kind.namespaced else ""
        with self.lock:
            if kind.namespaced:
                self._require_namespace(namespace)
                meta["namespace"] = namespace
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise ApiError(422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required value")
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta["name"]
            if (resource, namespace, name) in self.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{kind.qualified} "{name}" already exists',
                    {"name": name, "group": kind.group, "kind": kind.resource},
                )
            self._prepare(kind, obj)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            meta.pop("resourceVersion", None)
            meta.pop("deletionTimestamp", None)
            if resource in GENERATION_RESOURCES:
                meta["generation"] = 1
            if resource == "namespaces":
                obj["spec"] = {"finalizers": ["kubernetes"]}
                obj["status"] = {"phase": "Active"}
            if resource in STATUS_RESET_ON_CREATE:
                obj["status"] = initial_status(resource, obj)
            elif resource != "events":
                obj.setdefault("status", {})
            apply_status_defaults(resource, obj)
            return self._commit("ADDED", resource, namespace, obj, None)

    def replace(self, resource: str, namespace: str, name: str, obj: dict, subresource: str | None = None) -> dict:
        """PUT semantics: optimistic concurrency on resourceVersion; status vs. main resource."""
        kind = KINDS[resource]
        obj = strip_nulls(obj)
        with self.lock:
            current = self.objects.get((resource, namespace or "", name))
            if current is None:
                raise not_found(kind, name)
            meta = obj.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    {"name": name, "group": kind.group, "kind": kind.resource},
                )
            return self._update(kind, current, obj, subresource)

    def update(self, obj: dict) -> dict:
        """Controller write of a whole object (spec, status and metadata), no RV check."""
        resource = _resource_of(obj)
        meta = obj["metadata"]
        with self.lock:
            current = self.objects.get((resource, meta.get("namespace", ""), meta["name"]))
            if current is None:
                raise not_found(KINDS[resource], meta["name"])
            return self._update(KINDS[resource], current, copy.deepcopy(obj), "all")

    def _update(self, kind: Kind, current: dict, obj: dict, subresource: str | None) -> dict:
        meta = obj["metadata"]
        old_meta = current["metadata"]
        if subresource == "status":
            # The status subresource changes only status (and, for controllers, annotations).
            new = copy.deepcopy(current)
            new["status"] = obj.get("status", {})
            obj = new
        elif subresource is None and kind.resource not in ("events",):
            # The main resource ignores status changes, like the real status strategy.
            obj["status"] = copy.deepcopy(current.get("status", {}))
        meta = obj["metadata"]
        for key in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        self._prepare(kind, obj)
        apply_status_defaults(kind.resource, obj)
        if kind.resource in GENERATION_RESOURCES and obj.get("spec") != current.get("spec"):
            meta["generation"] = old_meta.get("generation", 0) + 1
        if kind.resource == "namespaces":
            obj["spec"], obj["status"] = current["spec"], current["status"]
        if _same_ignoring_rv(obj, current):
            return copy.deepcopy(current)  # a no-op write does not bump the RV
        return self._commit("MODIFIED", kind.resource, meta.get("namespace", ""), obj, current)

    def delete(self, resource: str, namespace: str, name: str, propagation: str = "Background"):
        """Delete an object; dependents (ownerReferences) go too unless propagation is Orphan."""
        kind = KINDS[resource]
        with self.lock:
            key = (resource, namespace if kind.namespaced else "", name)
            current = self.objects.get(key)
            if current is None:
                raise not_found(kind, name)
            self._delete(key, propagation)
            return copy.deepcopy(current)

    def _delete(self, key, propagation: str) -> None:
        obj = self.objects.get(key)
        if obj is None:
            return
        resource, namespace, _ = key
        uid = obj["metadata"]["uid"]
        gone = copy.deepcopy(obj)
        del self.objects[key]
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._publish(WatchEvent(self.rv, "DELETED", resource, namespace, gone, obj))
        if resource == "namespaces":
            for resource_name in KINDS:
                for (ns, name), _ in self.objects.of(resource_name, key[2]):
                    self._delete((resource_name, ns, name), "Background")
            return
        children = [((res, *k), obj) for res in KINDS for k, obj in self.objects.of(res, namespace)]
        for child_key, child in children:
            refs = child["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == uid for ref in refs):
                continue
            if propagation == "Orphan":
                child = copy.deepcopy(child)
                child["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self._commit("MODIFIED", child_key[0], child_key[1], child, self.objects[child_key])
            else:
                self._delete(child_key, propagation)

    # --------------------------------------------------------------- helpers
    def _require_namespace(self, namespace: str) -> None:
        if ("namespaces", "", namespace) not in self.objects:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _prepare(self, kind: Kind, obj: dict) -> None:
        obj["kind"], obj["apiVersion"] = kind.kind, kind.api_version
        if kind.resource == "deployments":
            apply_deployment_defaults(obj)
        if kind.resource in ("deployments", "replicasets"):
            obj["spec"].setdefault("replicas", 1)
            validate_workload(kind, obj)
            apply_pod_spec_defaults(obj["spec"]["template"].setdefault("spec", {}))
        if kind.resource == "pods":
            apply_pod_spec_defaults(obj.setdefault("spec", {}))

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _commit(self, type_: str, resource: str, namespace: str, obj: dict, old) -> dict:
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[(resource, namespace, obj["metadata"]["name"])] = obj
        self._publish(WatchEvent(self.rv, type_, resource, namespace, obj, old))
        return copy.deepcopy(obj)

    def _publish(self, event: WatchEvent) -> None:
        # Stored objects are replaced, never mutated in place, so sharing them is safe.
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        for watcher in self.watchers:
            if watcher.wants(event):
                watcher.events.put(event)
        for observer in list(self.observers):
            observer(self, event)
        self.changed.notify_all()

    # ---------------------------------------------------------------- watches
    def watch(self, resource: str, namespace: str | None, resource_version: str | None):
        """Register a watcher and return (watcher, initial events).

        With no resourceVersion (or "0") the initial events are synthetic ADDED events for every
        current object; otherwise they are the history after that version. Raises 410 Expired
        when that part of the history has been compacted away.

        A resourceVersion ahead of the store (a client that watched another, newer cluster, e.g.
        before an etcd restore) is accepted, as kube-apiserver's watch cache does for a plain
        watch: the watch stays silent until the store passes that version and never sends the
        events in between (kubernetes/kubernetes#107457). Only reads wait and fail with
        "Too large resource version" (see `wait_fresh`).
        """
        with self.lock:
            watcher = Watcher(resource, namespace)
            if resource_version in (None, "", "0"):
                initial = [
                    WatchEvent(self.rv, "ADDED", resource, obj["metadata"].get("namespace", ""), obj)
                    for obj in (self.objects[k] for k in sorted(self.objects))
                    if _resource_of(obj) == resource
                    and (namespace is None or obj["metadata"].get("namespace") == namespace)
                ]
            else:
                try:
                    since = int(resource_version)
                except ValueError as exc:
                    raise ApiError(400, "BadRequest", f"invalid resource version: {resource_version}") from exc
                if since < self.compacted_rv:
                    raise expired(since, self.compacted_rv)
                watcher.since = since
                initial = [e for e in self.history if e.rv > since and watcher.wants(e)]
            self.watchers.append(watcher)
            return watcher, initial

    def wait_fresh(self, min_rv: int, timeout: float) -> bool:
        """Wait until the store's resourceVersion reaches `min_rv` (the watch cache's
        waitUntilFreshAndBlock); False if it did not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.rv < min_rv and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.changed.wait(min(remaining, 0.05))
            return self.rv >= min_rv

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            if watcher in self.watchers:
                self.watchers.remove(watcher)

    def compact(self) -> int:
        """Forget the whole event history, as etcd compaction would; returns the current RV."""
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv
            return self.rv

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()


def _resource_of(obj: dict) -> str:
    for kind in KINDS.values():
        if kind.kind == obj.get("kind"):
            return kind.resource
    raise ValueError(f"unknown kind {obj.get('kind')!r}")


def _same_ignoring_rv(a: dict, b: dict) -> bool:
    a = {**a, "metadata": {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}}
    b = {**b, "metadata": {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}}
    return a == b
