"""A fake Kubernetes API server with a real-algorithm deployment controller.

Speaks enough of the Kubernetes API (apps/v1 Deployments and ReplicaSets, core/v1 Pods,
Namespaces and Events, coordination.k8s.io Leases, and the kinds the portal's own manifests use,
stored as sent; get / list / watch / create / replace / patch / apply / delete, dry runs,
managedFields, Tables, discovery, OpenAPI v2 and v3, pods/log, access reviews) that the official
`kubernetes` Python client and kubectl (1.32, and Debian's 1.20) work against it with validation
on: see docs/SANDBOXES.md for what clients can rely on. A background thread runs the deployment
controller (rolling update and recreate, as in kubernetes/kubernetes), a ReplicaSet controller
and a kubelet stand-in (kubelet.py) that makes pods Ready after `ready_after` seconds. Image tags
ending in `-crash` crash-loop with the kubelet's back-off (`crash_backoff`, 10 s, doubling, capped
at 30×); `-missing` fail to pull. Deleted pods are Terminating for `terminate_after` seconds.
The controllers sleep while nothing changes, so an idle cluster costs no CPU.

Every Deployment has a load balancer, `GET /sandbox/traffic/{namespace}/{name}/`, routed only to
its Ready pods (503 when none is), and `GET /metrics` counts what the pods served per pod and
version for Prometheus; tags ending in `-errors` answer a share of requests with 500, `-slow` add
latency, and `traffic_rate` (`--traffic-rate`) plays users sending that many requests a second to
every Deployment (traffic.py).

In tests::

    from sandbox.kube import start
    kube = start(ready_after=0.1)
    ...  # talk to kube.url
    kube.wait_for(lambda c: ..., timeout=5)   # predicate over the Cluster, checked on writes
    kube.compact()                              # next watch from an old RV gets 410 Expired
    kube.restart(pause=0.5)                     # the API server restarts: same port, same objects
    kube.stop()

`stop()` ends like a real apiserver process: every connection is dropped at once (open watches
included; a kept-alive connection is closed). `pause_http(seconds)` / `resume_http()` /
`restart(pause)` take the HTTP server down and bring a new one up on the same port over the same
store: objects keep their uids, generations and resourceVersions, the watch history survives, so a
client can watch again from its last resourceVersion and miss nothing. The controllers go on
meanwhile (as behind an HA apiserver) unless `freeze_controllers=True`.

`state=FILE` (`--state`) keeps the store in a state file (persist.py): a sandbox started again on
it, even after `kill -9`, has the same objects, uids, resourceVersions and revisions and finishes
what was in flight; a seed only fills a new file.

Reads (get/list) with a resourceVersion the store has not reached wait up to `too_large_wait`
seconds (3, as the watch cache) and then fail with 504 "Too large resource version"; a plain watch
from such a version is accepted and stays silent until the store passes it, as on kube-apiserver.

From the command line::

    python -m sandbox.kube --port 8001 [--ready-after 2] [--seed seed.yaml] [--state state.json]
        [--crash-backoff 10] [--terminate-after 1] [--token T] [--traffic-rate 5] [-v]

Seed file (YAML or JSON), either a list of manifests (kind Namespace / Deployment / ReplicaSet /
Pod) or a mapping::

    namespaces: [staging, prod]
    deployments:
      - {namespace: prod, name: web, image: "nginx:1.0", replicas: 3}   # shorthand
      - {apiVersion: apps/v1, kind: Deployment, metadata: {...}, spec: {...}}  # full manifest

The shorthand accepts `name`, `namespace` (default "default"), `image`, `replicas` (default 1),
`container` (default: the name), `labels` (default {app: <name>}) and any extra `spec` fields
under `spec`. Namespaces named by deployments are created automatically.
"""

import collections
import copy
import json
import threading
import time
from pathlib import Path

from sandbox.http import POLL_INTERVAL, Running, shutdown_server

from .controller import Controllers
from .persist import KubeState
from .server import DEFAULT_TOO_LARGE_WAIT, KubeHandler, KubeServer
from .store import KINDS, Cluster
from .traffic import LoadGenerator, Traffic

__all__ = ["KubeSandbox", "start", "load_seed"]


def _shorthand_deployment(entry: dict) -> dict:
    name = entry["name"]
    labels = entry.get("labels") or {"app": name}
    spec = {
        "replicas": entry.get("replicas", 1),
        "selector": {"matchLabels": dict(labels)},
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": entry.get("container", name), "image": entry["image"]}]},
        },
        **(entry.get("spec") or {}),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": entry.get("namespace", "default")},
        "spec": spec,
    }


def _seed_manifests(seed) -> list[dict]:
    """Normalise a seed (list of manifests or {namespaces, deployments}) to manifests."""
    if isinstance(seed, list):
        return seed
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}} for name in seed.get("namespaces") or []
    ]
    for entry in seed.get("deployments") or []:
        manifests.append(entry if "kind" in entry else _shorthand_deployment(entry))
    return manifests


def load_seed(cluster: Cluster, seed) -> None:
    """Create the objects of a seed: a path (YAML/JSON), a list of manifests or a mapping."""
    if isinstance(seed, str | Path):
        import yaml  # only needed for seed files

        seed = yaml.safe_load(Path(seed).read_text())
    by_kind = {k.kind: k.resource for k in KINDS.values()}
    for manifest in _seed_manifests(seed or []):
        manifest = copy.deepcopy(manifest)
        resource = by_kind[manifest["kind"]]
        meta = manifest.setdefault("metadata", {})
        namespace = meta.get("namespace", "default") if KINDS[resource].namespaced else ""
        if namespace and cluster.find("namespaces", "", namespace) is None:
            cluster.create("namespaces", "", {"metadata": {"name": namespace}})
        if cluster.find(resource, namespace, meta["name"]) is None:
            cluster.create(resource, namespace, manifest, manager="sandbox-seed")


class KubeSandbox:
    """A running fake cluster: HTTP server + controllers. See the module docstring."""

    def __init__(
        self,
        port=0,
        ready_after=2.0,
        token=None,
        seed=None,
        bookmark_interval=1.0,
        verbose=False,
        history_size=1000,
        too_large_wait=DEFAULT_TOO_LARGE_WAIT,
        crash_backoff=10.0,
        terminate_after=None,
        state=None,
        traffic_rate=0.0,
    ):
        self.state_path = state
        self.cluster = Cluster(history_size=history_size, state=KubeState(state) if state else None)
        # A state file that exists already is the cluster: the seed only makes a new one.
        if seed is not None and not self.cluster.loaded:
            load_seed(self.cluster, seed)
        self.controllers = Controllers(
            self.cluster, ready_after=ready_after, crash_backoff=crash_backoff, terminate_after=terminate_after
        ).start()
        self.requests_log = collections.deque(maxlen=2000)
        self.traffic = Traffic(self.cluster)
        self.load = LoadGenerator(self.traffic, traffic_rate).start() if traffic_rate > 0 else None
        self.http_options = {
            "cluster": self.cluster,
            "traffic": self.traffic,
            "kubelet": self.controllers.kubelet,
            "token": token,
            "bookmark_interval": bookmark_interval,
            "too_large_wait": too_large_wait,
            "requests_log": self.requests_log,
            "verbose": verbose,
        }
        self._http_lock = threading.RLock()
        self._resume_timer: threading.Timer | None = None
        self.running: Running | None = self._serve(port)
        self._port = self.running.port

    def _serve(self, port: int) -> Running:
        server = KubeServer(("127.0.0.1", port), KubeHandler)
        for name, value in self.http_options.items():
            setattr(server, name, value)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, name="KubeHandler", daemon=True
        )
        thread.start()
        return Running(server, thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def traffic_url(self, namespace: str, name: str) -> str:
        """The load balancer in front of Deployment `name` (see traffic.py)."""
        return f"{self.url}/sandbox/traffic/{namespace}/{name}/"

    @property
    def port(self) -> int:
        return self._port

    @property
    def http_up(self) -> bool:
        return self.running is not None

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()
        self.cluster.close()
        self.controllers.stop()
        with self._http_lock:
            if self._resume_timer is not None:
                self._resume_timer.cancel()
            self._stop_http()

    def _stop_http(self) -> None:
        running, self.running = self.running, None
        if running is None:
            return
        shutdown_server(running.server, running.thread)  # no more accepts
        running.server.drop_connections()
        running.server.server_close()
        running.thread.join(timeout=5)

    # ------------------------------------------------------- API server outages
    def pause_http(self, seconds: float | None = None, freeze_controllers: bool = False) -> None:
        """Take the API server down: every connection drops, new ones are refused. The store
        stays. With `seconds`, a new server comes back on the same port after that long (in the
        background); otherwise call `resume_http()`. `freeze_controllers` also stops the
        controllers and kubelet until then (one apiserver, nothing can write)."""
        with self._http_lock:
            if self._resume_timer is not None:
                self._resume_timer.cancel()
                self._resume_timer = None
            self.controllers.paused = freeze_controllers
            self._stop_http()
            if seconds is not None:
                self._resume_timer = threading.Timer(seconds, self.resume_http)
                self._resume_timer.daemon = True
                self._resume_timer.start()

    def resume_http(self) -> None:
        """Bring the API server back on the same port, over the same objects."""
        with self._http_lock:
            self._resume_timer = None
            if self.running is None and not self.cluster.closed:
                self.running = self._serve(self._port)
            with self.cluster.lock:
                self.controllers.paused = False
                self.cluster.changed.notify_all()

    def restart(self, pause: float = 0.0, freeze_controllers: bool = False) -> None:
        """Restart the API server (blocking): drop everything, wait `pause` s, serve again."""
        self.pause_http(freeze_controllers=freeze_controllers)
        if pause:
            time.sleep(pause)
        self.resume_http()

    def __enter__(self) -> "KubeSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------- helpers
    def compact(self) -> int:
        return self.cluster.compact()

    def wait_for(self, predicate, timeout: float = 10.0):
        """Wait until `predicate(cluster)` is truthy (checked under the lock after each write
        and at least every 50 ms); return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self.cluster.lock:
            while True:
                value = predicate(self.cluster)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self.cluster.changed.wait(min(remaining, 0.05))

    def deployment(self, namespace: str, name: str) -> dict:
        return self.cluster.get("deployments", namespace, name)

    def rollout_complete(self, namespace: str, name: str) -> bool:
        """kubectl's `rollout status` success condition, for wait_for()."""
        d = self.cluster.find("deployments", namespace, name)
        if d is None:
            return False
        status, replicas = d.get("status") or {}, d["spec"].get("replicas", 1)
        return (
            status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
        )

    def create_deployment(self, namespace: str, name: str, image: str, replicas: int = 1, **spec):
        return self.cluster.create(
            "deployments",
            namespace,
            _shorthand_deployment(
                {
                    "name": name,
                    "namespace": namespace,
                    "image": image,
                    "replicas": replicas,
                    "spec": spec,
                }
            ),
        )

    def observe(self, callback):
        """Call `callback(cluster, event)` after every committed write (under the lock)."""
        self.cluster.observers.append(callback)
        return lambda: self.cluster.observers.remove(callback)

    def observe_rollout(self, namespace: str, name: str) -> "RolloutRecorder":
        """Record a snapshot of deployment `name`, its ReplicaSets and pods after every write."""
        recorder = RolloutRecorder(self.cluster, namespace, name)
        recorder.stop = self.observe(recorder)
        return recorder

    def dump(self) -> str:
        with self.cluster.lock:
            return json.dumps([obj for _, obj in sorted(self.cluster.objects.items())], indent=1)


class RolloutRecorder:
    """Observer that keeps one `snapshot()` per committed write (see observe_rollout).

    Each state is a dict: `rv`, `deployment` (spec.replicas, status), `replicasets`
    ({name: (spec.replicas, status.availableReplicas)}), `pods` (non-terminating pods of the
    deployment's selector) and `ready` (how many of them are Ready).
    """

    def __init__(self, cluster: Cluster, namespace: str, name: str):
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.states: list[dict] = []
        self.stop = lambda: None

    def __call__(self, cluster: Cluster, event) -> None:
        if event.namespace == self.namespace and event.resource != "events":
            self.states.append(self.snapshot())

    def snapshot(self) -> dict:
        d = self.cluster.find("deployments", self.namespace, self.name)
        if d is None:
            return {"rv": self.cluster.rv, "deployment": None}
        selector = d["spec"]["selector"].get("matchLabels") or {}
        pods = [
            p
            for p in self.cluster.raw("pods", self.namespace)
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            and not p["metadata"].get("deletionTimestamp")
        ]
        ready = sum(
            any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])
            for p in pods
        )
        return {
            "rv": self.cluster.rv,
            "deployment": {"replicas": d["spec"]["replicas"], "status": d.get("status") or {}},
            "replicasets": {
                rs["metadata"]["name"]: (
                    rs["spec"]["replicas"],
                    (rs.get("status") or {}).get("availableReplicas", 0),
                )
                for rs in self.cluster.raw("replicasets", self.namespace)
                if any(r.get("uid") == d["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])
            },
            "pods": len(pods),
            "ready": ready,
        }


def start(port=0, ready_after=0.3, token=None, seed=None, **options) -> KubeSandbox:
    """Start a fake cluster (for tests). `options`: bookmark_interval, verbose, history_size,
    too_large_wait, crash_backoff (default 5 × ready_after: the kubelet's 10 s scaled to the
    pods' pace), terminate_after, state."""
    options.setdefault("crash_backoff", 5 * ready_after)
    return KubeSandbox(port=port, ready_after=ready_after, token=token, seed=seed, **options)
