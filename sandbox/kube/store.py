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

import base64
import binascii
import copy
import json
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import fields
from .errors import ApiError, expired, invalid, not_found
from .selectors import parse_field_selector, parse_label_selector
from .validation import check_name


@dataclass(frozen=True)
class Kind:
    """Static description of one resource type (what discovery also reports)."""

    resource: str
    kind: str
    group: str  # "" for the core group
    namespaced: bool
    short_names: tuple[str, ...]
    subresources: tuple[str, ...] = ()
    version: str = "v1"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

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
        # Stored as they are sent (no controller acts on them), so that the portal's own manifests
        # (deploy/) apply, and Leases so that leader election runs against the sandbox.
        Kind("serviceaccounts", "ServiceAccount", "", True, ("sa",)),
        Kind("configmaps", "ConfigMap", "", True, ("cm",)),
        Kind("secrets", "Secret", "", True, ()),
        Kind("services", "Service", "", True, ("svc",), ("status",)),
        Kind("persistentvolumeclaims", "PersistentVolumeClaim", "", True, ("pvc",), ("status",)),
        Kind("leases", "Lease", "coordination.k8s.io", True, ()),
        Kind("roles", "Role", "rbac.authorization.k8s.io", True, ()),
        Kind("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", True, ()),
        Kind("jobs", "Job", "batch", True, (), ("status",)),
        Kind("poddisruptionbudgets", "PodDisruptionBudget", "policy", True, ("pdb",), ("status",)),
        Kind("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", True, ("hpa",), ("status",), "v2"),
        # Istio's custom resources (the `istio` overlay), served as if their CRDs were installed.
        Kind("peerauthentications", "PeerAuthentication", "security.istio.io", True, ("pa",)),
        Kind("virtualservices", "VirtualService", "networking.istio.io", True, ("vs",)),
        Kind("destinationrules", "DestinationRule", "networking.istio.io", True, ("dr",)),
    )
}
# Kinds with no status at all (the apiserver never writes one).
NO_STATUS = {"events", "serviceaccounts", "configmaps", "secrets", "leases", "roles", "rolebindings"}
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


def fold_string_data(secret: dict) -> None:
    """A Secret's write-only `stringData` is merged into `data` (base64) and never stored; the
    type defaults to Opaque (core/v1 Secret conversion and defaults)."""
    data = secret.get("data") or {}
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        secret["data"] = data
    secret.setdefault("type", "Opaque")


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

    def __init__(self, history_size: int = DEFAULT_HISTORY, state=None):
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
        # Side tables persisted with the objects (the kubelet's clock per pod), {table: {key: value}}.
        self.side: dict[str, dict] = {}
        self.state = state
        self.loaded = state is not None and state.load(self)
        if self.loaded:
            # Like a watch cache started from etcd: history begins at the loaded revision.
            self.compacted_rv = self.rv
        else:
            self.create("namespaces", "", {"metadata": {"name": "default"}})
            if state is not None:
                state.snapshot(self)

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
        page = self.list_page(resource, namespace, label_selector, field_selector)
        return page.items, page.rv

    def list_page(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector=None,
        field_selector=None,
        limit: int = 0,
        token: str | None = None,
        exact_rv: int | None = None,
    ) -> Page:
        """One page of a list, as etcd serves it: `limit` items from the `continue` token on, all
        read at one revision (the current one, `exact_rv`, or the one the token was issued at);
        410 Expired when that revision has been compacted away."""
        labels = parse_label_selector(label_selector) if label_selector else None
        fields = parse_field_selector(field_selector) if field_selector else None
        start = ""
        with self.lock:
            if token:
                exact_rv, start = decode_continue(token)
                if exact_rv < self.compacted_rv:
                    raise continue_expired(encode_continue(self.rv, start))
            elif exact_rv is not None and exact_rv < self.compacted_rv:
                raise list_expired()
            rv = self.rv if exact_rv is None else exact_rv
            snapshot = self._objects_at(resource, rv) if rv != self.rv else dict(self.objects.of(resource))
            keys = sorted(
                k for k, obj in snapshot.items() if (namespace is None or k[0] == namespace) and _key_text(k) > start
            )
            items = [copy.deepcopy(snapshot[k]) for k in keys if matches(snapshot[k], labels, fields)]
        page = Page(items, str(rv))
        if limit and len(items) > limit:
            page.items = items[:limit]
            last = page.items[-1]["metadata"]
            page.continue_token = encode_continue(rv, _key_text((last.get("namespace", ""), last["name"])))
            if labels is None and fields is None:
                page.remaining = len(items) - limit
        return page

    def _objects_at(self, resource: str, rv: int) -> dict:
        """The objects of one resource as they were at revision `rv`, undoing the history after it."""
        objects = dict(self.objects.of(resource))
        for event in reversed(self.history):
            if event.rv <= rv:
                break
            if event.resource != resource:
                continue
            key = (event.namespace, event.obj["metadata"]["name"])
            if event.type == "ADDED":
                objects.pop(key, None)
            elif event.old is not None:
                objects[key] = event.old
        return objects

    def raw(self, resource: str, namespace: str | None = None) -> list[dict]:
        """The stored dicts themselves (no copies), for code already holding the lock."""
        return [obj for _, obj in self.objects.of(resource, namespace)]

    # ---------------------------------------------------------------- writes
    def create(self, resource: str, namespace: str, obj: dict, *, manager: str = "", dry_run: bool = False) -> dict:
        """POST semantics. `manager` gets the fields (managedFields); `dry_run` validates and
        answers the object that would be created, without a resourceVersion, storing nothing."""
        kind = KINDS[resource]
        obj = strip_nulls(obj)
        meta = obj.setdefault("metadata", {})
        namespace = namespace if kind.namespaced else ""
        with self.lock:
            if kind.namespaced:
                self._require_namespace(namespace)
                meta["namespace"] = namespace
            name = self._new_name(kind, meta)
            if (resource, namespace, name) in self.objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{kind.qualified} "{name}" already exists',
                    {"name": name, "group": kind.group, "kind": kind.resource},
                )
            self._prepare(kind, obj)
            self._prepare_for_create(kind, obj)
            if manager:
                fields.record_update(None, obj, kind.kind, manager)
            if dry_run:
                return copy.deepcopy(obj)
            return self._commit("ADDED", resource, namespace, obj, None)

    @staticmethod
    def _prepare_for_create(kind: Kind, obj: dict) -> None:
        """What the server sets on a new object (PrepareForCreate and BeforeCreate)."""
        resource, meta = kind.resource, obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            meta.pop(key, None)
        if not any(meta.get("managedFields") or []):
            meta.pop("managedFields", None)
        if resource in GENERATION_RESOURCES:
            meta["generation"] = 1
        if resource == "namespaces":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        if resource in STATUS_RESET_ON_CREATE:
            obj["status"] = initial_status(resource, obj)
        elif resource not in NO_STATUS:
            obj.setdefault("status", {})
        apply_status_defaults(resource, obj)

    @staticmethod
    def _new_name(kind: Kind, meta: dict) -> str:
        """The name of a new object (from generateName if need be), checked like the apiserver."""
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required value")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        check_name(kind, meta["name"])
        return meta["name"]

    def replace(
        self,
        resource: str,
        namespace: str,
        name: str,
        obj: dict,
        subresource: str | None = None,
        *,
        manager: str = "",
        dry_run: bool = False,
    ) -> dict:
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
                raise conflict(kind, name)
            return self._update(kind, current, obj, subresource, manager, dry_run)

    def apply(
        self,
        resource: str,
        namespace: str,
        name: str,
        config: dict,
        *,
        manager: str,
        force: bool = False,
        dry_run: bool = False,
    ) -> tuple[int, dict]:
        """Server-side apply (PATCH application/apply-patch+yaml): create the object when it does
        not exist, else merge `config` in with field ownership (fields.apply). Returns
        (HTTP status, object)."""
        kind = KINDS[resource]
        config = strip_nulls(config)
        meta = config.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        meta.pop("managedFields", None)
        with self.lock:
            current = self.objects.get((resource, namespace or "", name))
            if current is None:
                empty = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name}}
                created = fields.apply(empty, config, kind.kind, manager, force)
                return 201, self.create(resource, namespace, created, dry_run=dry_run)
            try:
                merged = fields.apply(current, config, kind.kind, manager, force)
            except fields.ApplyConflict as clash:
                raise ApiError(409, "Conflict", clash.message(), {"causes": clash.causes()}) from None
            return 200, self._update(kind, current, merged, None, "", dry_run)

    def update(self, obj: dict, manager: str = "kube-controller-manager") -> dict:
        """Controller write of a whole object (spec, status and metadata), no RV check."""
        resource = _resource_of(obj)
        meta = obj["metadata"]
        with self.lock:
            current = self.objects.get((resource, meta.get("namespace", ""), meta["name"]))
            if current is None:
                raise not_found(KINDS[resource], meta["name"])
            return self._update(KINDS[resource], current, copy.deepcopy(obj), "all", manager, False)

    def _update(self, kind: Kind, current: dict, obj: dict, subresource, manager: str, dry_run: bool) -> dict:
        old_meta = current["metadata"]
        if subresource == "status":
            # The status subresource changes only status (and, for controllers, annotations).
            new = copy.deepcopy(current)
            new["status"] = obj.get("status", {})
            obj = new
        elif subresource is None and kind.resource not in NO_STATUS:
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
        self._track_fields(kind, current, obj, subresource, manager)
        if _same_ignoring_rv(obj, current):
            return copy.deepcopy(current)  # a no-op write does not bump the RV
        if dry_run:
            meta["resourceVersion"] = old_meta["resourceVersion"]
            return copy.deepcopy(obj)
        return self._commit("MODIFIED", kind.resource, meta.get("namespace", ""), obj, current)

    @staticmethod
    def _track_fields(kind: Kind, current: dict, obj: dict, subresource, manager: str) -> None:
        """managedFields, as kube-apiserver's field manager keeps them: a request that sends
        some replaces the live ones (`[{}]` strips them all; `[]` or none keeps the live ones, so
        clients unaware of the field cannot wipe it), then `manager` gets what this write
        changed."""
        meta, live = obj["metadata"], current["metadata"].get("managedFields")
        sent = meta.get("managedFields")
        if sent and all(not entry for entry in sent):
            meta.pop("managedFields", None)
            return
        if not sent:
            meta.pop("managedFields", None)
            if live:
                meta["managedFields"] = copy.deepcopy(live)
        if manager:
            fields.record_update(current, obj, kind.kind, manager, subresource or "")

    def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        propagation: str = "Background",
        *,
        dry_run: bool = False,
        grace: int | None = None,
        preconditions: dict | None = None,
    ) -> dict:
        """Delete an object; dependents (ownerReferences) go too unless propagation is Orphan.
        Pods go gracefully: they get a deletionTimestamp (Terminating) and the kubelet removes
        them once their containers stopped (`grace` 0 removes them at once)."""
        kind = KINDS[resource]
        with self.lock:
            key = (resource, namespace if kind.namespaced else "", name)
            current = self.objects.get(key)
            if current is None:
                raise not_found(kind, name)
            _check_preconditions(kind, current, preconditions or {})
            if resource == "pods" and grace != 0:
                return self._terminate(current, grace, dry_run)
            if dry_run:
                return copy.deepcopy(current)
            self._delete(key, propagation)
            return copy.deepcopy(current)

    def _terminate(self, pod: dict, grace: int | None, dry_run: bool) -> dict:
        """Graceful pod deletion: set deletionTimestamp (now + grace) once, or shorten it."""
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", grace) <= grace:
            return copy.deepcopy(pod)
        new = copy.deepcopy(pod)
        deadline = datetime.now(UTC) + timedelta(seconds=grace)
        new["metadata"]["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        if dry_run:
            return new
        return self._commit("MODIFIED", "pods", meta["namespace"], new, pod)

    def _delete(self, key, propagation: str) -> None:
        obj = self.objects.get(key)
        if obj is None:
            return
        resource, namespace, _ = key
        uid = obj["metadata"]["uid"]
        gone = copy.deepcopy(obj)
        del self.objects[key]
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._persist({"rv": self.rv, "op": "delete", "key": list(key)})
        self._publish(WatchEvent(self.rv, "DELETED", resource, namespace, gone, obj))
        for table in [name for name, entries in self.side.items() if uid in entries]:
            self.set_side(table, uid, None)  # e.g. the kubelet's clock of a pod deleted at once
        if resource == "namespaces":
            for resource_name in KINDS:
                for (ns, name), _ in self.objects.of(resource_name, key[2]):
                    self._delete((resource_name, ns, name), "Background")
            return
        self._collect_dependents(uid, namespace, propagation)

    def _collect_dependents(self, uid: str, namespace: str, propagation: str) -> None:
        """The garbage collector's part: dependents go too (pods gracefully), or, orphaned, lose
        their ownerReference to the deleted owner."""
        children = [((res, *k), obj) for res in KINDS for k, obj in self.objects.of(res, namespace)]
        for child_key, child in children:
            refs = child["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == uid for ref in refs):
                continue
            if propagation == "Orphan":
                child = copy.deepcopy(child)
                kept = [r for r in refs if r.get("uid") != uid]
                if kept:
                    child["metadata"]["ownerReferences"] = kept
                else:
                    del child["metadata"]["ownerReferences"]
                self._commit("MODIFIED", child_key[0], child_key[1], child, self.objects[child_key])
            elif child_key[0] == "pods":
                self._terminate(child, None, False)
            else:
                self._delete(child_key, propagation)

    def remove_terminated(self, pod: dict) -> None:
        """The kubelet's final delete of a Terminating pod whose containers stopped."""
        meta = pod["metadata"]
        self._delete(("pods", meta["namespace"], meta["name"]), "Background")

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
        if kind.resource == "secrets":
            fold_string_data(obj)

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _commit(self, type_: str, resource: str, namespace: str, obj: dict, old) -> dict:
        obj["metadata"]["resourceVersion"] = self._next_rv()
        key = (resource, namespace, obj["metadata"]["name"])
        self.objects[key] = obj
        self._persist({"rv": self.rv, "op": "put", "key": list(key), "obj": obj})
        self._publish(WatchEvent(self.rv, type_, resource, namespace, obj, old))
        return copy.deepcopy(obj)

    def _persist(self, record: dict) -> None:
        if self.state is not None:
            self.state.append(self, record)

    def set_side(self, table: str, key: str, value) -> None:
        """Store (value) or drop (None) one entry of a persisted side table."""
        entries = self.side.setdefault(table, {})
        if value is None:
            if entries.pop(key, None) is None:
                return
        elif entries.get(key) == value:
            return
        else:
            entries[key] = value
        self._persist({"op": "side", "table": table, "key": key, "value": value})

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
                self.changed.wait(remaining)
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
            for watcher in self.watchers:
                watcher.events.put(None)  # wakes the watch request, which then ends
            if self.state is not None:
                self.state.close(self)
            self.changed.notify_all()


@dataclass
class Page:
    items: list[dict]
    rv: str
    continue_token: str = ""
    remaining: int | None = None


def _key_text(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


def encode_continue(rv: int, start: str) -> str:
    """etcd3's continue token: base64 of {"v", "rv", "start"} (the key to continue after)."""
    body = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start + "\x00"}, separators=(",", ":"))
    return base64.b64encode(body.encode()).decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        body = json.loads(base64.b64decode(token, validate=True))
        if body.get("v") != "meta.k8s.io/v1":
            raise ValueError(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
            )
        return int(body["rv"]), body["start"].rstrip("\x00")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ApiError(400, "BadRequest", f"continue key is not valid: {exc}") from None


def list_expired() -> ApiError:
    return ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")


def continue_expired(fresh_token: str) -> ApiError:
    error = ApiError(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new "
        "list without the continue parameter, or use the continue value from the response to get an "
        "inconsistent list.",
    )
    error.list_meta = {"continue": fresh_token}
    return error


def conflict(kind: Kind, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again",
        {"name": name, "group": kind.group, "kind": kind.resource},
    )


def _check_preconditions(kind: Kind, current: dict, preconditions: dict) -> None:
    meta = current["metadata"]
    for field_name in ("uid", "resourceVersion"):
        wanted = preconditions.get(field_name)
        if wanted and wanted != meta.get(field_name):
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.qualified} "{meta["name"]}": Precondition failed: '
                f"{field_name.replace('resourceVersion', 'ResourceVersion').replace('uid', 'UID')} in precondition: "
                f"{wanted}, {field_name.replace('resourceVersion', 'ResourceVersion').replace('uid', 'UID')} in "
                f"object meta: {meta.get(field_name)}",
                {"name": meta["name"], "group": kind.group, "kind": kind.resource},
            )


def _resource_of(obj: dict) -> str:
    for kind in KINDS.values():
        if kind.kind == obj.get("kind"):
            return kind.resource
    raise ValueError(f"unknown kind {obj.get('kind')!r}")


def _same_ignoring_rv(a: dict, b: dict) -> bool:
    a = {**a, "metadata": {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}}
    b = {**b, "metadata": {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}}
    return a == b
