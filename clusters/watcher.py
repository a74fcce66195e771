"""The cluster watcher: one list+watch stream per (cluster, namespace, kind).

Level-triggered like a Kubernetes controller: each stream lists, then watches from the
list's resourceVersion; on 410 Gone it lists again; on errors it reconnects with capped
backoff. Every change recomputes the progress of the Deployment it belongs to, writes the
Workload row and sends `workload_observed`, which `releases` turns into events and states.
Streams never multiply with rollouts: their number is environments' namespaces × 3.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import close_old_connections
from django.utils import timezone

from clusters import rollout
from clusters.models import Environment, WatcherHeartbeat, Workload
from clusters.signals import workload_observed
from portal import live
from portal.integrations import IntegrationError, kube

log = logging.getLogger(__name__)
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0


@dataclass
class Namespace:
    """What one namespace of one cluster holds, kept current by its three streams."""

    cluster_pk: int
    name: str
    objects: dict = field(default_factory=lambda: {kind: {} for kind in kube.KINDS})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, kind: str, items: list[dict]) -> None:
        with self.lock:
            self.objects[kind] = {o["metadata"]["uid"]: o for o in items}

    def apply(self, kind: str, event_type: str, obj: dict) -> None:
        with self.lock:
            if event_type == "DELETED":
                self.objects[kind].pop(obj["metadata"]["uid"], None)
            else:
                self.objects[kind][obj["metadata"]["uid"]] = obj

    def deployment_of(self, kind: str, obj: dict) -> str | None:
        if kind == "deployments":
            return obj["metadata"]["name"]
        with self.lock:
            owner = _controller(obj)
            if kind == "pods":
                rs = self.objects["replicasets"].get(owner.get("uid")) if owner else None
                owner = _controller(rs) if rs else None
        return owner["name"] if owner and owner.get("kind") == "Deployment" else None

    def snapshot(self, name: str) -> kube.Snapshot | None:
        with self.lock:
            deployment = next((d for d in self.objects["deployments"].values() if d["metadata"]["name"] == name), None)
            if deployment is None:
                return None
            uid = deployment["metadata"]["uid"]
            rss = [r for r in self.objects["replicasets"].values() if (_controller(r) or {}).get("uid") == uid]
            rs_uids = {r["metadata"]["uid"] for r in rss}
            pods = [p for p in self.objects["pods"].values() if (_controller(p) or {}).get("uid") in rs_uids]
        return kube.Snapshot(deployment, rss, pods)

    def deployment_names(self) -> list[str]:
        with self.lock:
            return [d["metadata"]["name"] for d in self.objects["deployments"].values()]


def _controller(obj: dict) -> dict | None:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


class Watcher:
    def __init__(self, name: str = "watcher", heartbeat_seconds: float = 5.0, watch_timeout: int = 300):
        self.name = name
        self.heartbeat_seconds = heartbeat_seconds
        self.watch_timeout = watch_timeout
        self.stop = threading.Event()
        self.threads: dict[tuple, threading.Thread] = {}
        self.reconnects = 0
        self.lag = 0.0

    def run(self) -> None:
        """Run until `stop` is set: start streams for every environment, beat, re-plan."""
        while not self.stop.is_set():
            self.plan()
            self.beat()
            self.stop.wait(self.heartbeat_seconds)
        self.beat()

    def plan(self) -> None:
        close_old_connections()
        pairs = set(Environment.objects.values_list("cluster_id", "namespace"))
        for cluster_pk, namespace in pairs:
            space = Namespace(cluster_pk, namespace)
            for kind in kube.KINDS:
                key = (cluster_pk, namespace, kind)
                if key not in self.threads or not self.threads[key].is_alive():
                    thread = threading.Thread(
                        target=self.stream, args=(space, kind), name=f"watch-{namespace}-{kind}", daemon=True
                    )
                    self.threads[key] = thread
                    thread.start()

    def beat(self) -> None:
        close_old_connections()
        WatcherHeartbeat.objects.update_or_create(
            name=self.name,
            defaults={
                "beat_at": timezone.now(),
                "streams": sum(t.is_alive() for t in self.threads.values()),
                "reconnects": self.reconnects,
                "lag_seconds": self.lag,
            },
        )

    def stream(self, space: Namespace, kind: str) -> None:
        from clusters.models import Cluster

        backoff = BACKOFF_START
        while not self.stop.is_set():
            try:
                cluster = Cluster.objects.get(pk=space.cluster_pk)
                items, version = kube.list_objects(cluster, space.name, kind)
                space.replace(kind, items)
                self.refresh_all(space)
                backoff = BACKOFF_START
                self.follow(cluster, space, kind, version)
            except IntegrationError as error:
                if not error.permanent or "410" not in str(error):
                    log.warning("watch %s/%s: %s; retrying in %.1fs", space.name, kind, error, backoff)
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                self.reconnects += 1
            except Cluster.DoesNotExist:
                return
            except Exception:  # noqa: BLE001 - a stream must outlive any one bad event
                log.exception("watch %s/%s crashed; restarting", space.name, kind)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                close_old_connections()

    def follow(self, cluster, space: Namespace, kind: str, version: str) -> None:
        """Watch from `version` until the server ends the stream, re-watching from the last version."""
        while not self.stop.is_set():
            for event_type, obj in kube.watch_objects(cluster, space.name, kind, version, self.watch_timeout):
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if event_type in ("BOOKMARK", "ERROR"):
                    continue
                started = time.monotonic()
                space.apply(kind, event_type, obj)
                name = space.deployment_of(kind, obj)
                if name:
                    self.refresh(space, name)
                self.lag = time.monotonic() - started
                if self.stop.is_set():
                    return

    def refresh_all(self, space: Namespace) -> None:
        for name in space.deployment_names():
            self.refresh(space, name)

    def refresh(self, space: Namespace, name: str) -> None:
        snapshot = space.snapshot(name)
        for environment in Environment.objects.filter(cluster_id=space.cluster_pk, namespace=space.name):
            record(environment, name, snapshot)


def record(environment, name: str, snapshot: kube.Snapshot | None) -> Workload:
    """Write what the cluster runs for `name` and tell whoever listens."""
    if snapshot is None:
        workload, _ = Workload.objects.update_or_create(
            environment=environment, name=name, defaults={"exists": False, "observed_at": timezone.now()}
        )
        return workload
    progress = rollout.compute(snapshot.deployment, snapshot.replicasets, snapshot.pods)
    workload, _ = Workload.objects.update_or_create(
        environment=environment,
        name=name,
        defaults={
            "image": progress.image,
            "replicas": progress.desired,
            "updated": progress.updated,
            "ready": progress.ready,
            "available": progress.available,
            "generation": progress.generation,
            "observed_generation": progress.observed_generation,
            "revision": progress.revision,
            "conditions": progress.conditions,
            "progress": progress.as_dict(),
            "pods": progress.pods,
            "exists": True,
            "observed_at": timezone.now(),
        },
    )
    workload_observed.send(sender=Workload, workload=workload, progress=progress)
    live.workload_changed(
        {
            "kind": "workload",
            "environment": environment.slug,
            "workload": name,
            "image": workload.image,
            "drifted": workload.drifted,
            "available": progress.available,
            "desired": progress.desired,
        }
    )
    return workload
