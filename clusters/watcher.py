"""The cluster watcher: one list+watch stream per (cluster, namespace, kind).

Level-triggered like a Kubernetes controller: each stream lists, then watches from the
list's resourceVersion; on 410 Gone it lists again; on errors it reconnects with capped
backoff. Every change recomputes the progress of the Deployment it belongs to, writes the
Workload row and tells the pages; then the namespace's advancing thread sends
`workload_observed`, which `releases` turns into events and states. Streams never multiply with
rollouts: their number is environments' namespaces × 3 (and one advancing thread each).
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import close_old_connections, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from clusters import rollout
from clusters.models import Cluster, Environment, WatcherHeartbeat, Workload
from clusters.signals import workload_observed
from plumbing import alive, live
from plumbing.integrations import IntegrationError, kube

log = logging.getLogger(__name__)
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0


@dataclass
class Namespace:
    """What one namespace of one cluster holds, kept current by its three streams."""

    cluster_pk: int
    name: str
    objects: dict = field(default_factory=lambda: {kind: {} for kind in kube.KINDS})
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The three streams take turns to snapshot and record, so a Workload row and the timeline
    # never go back to an older picture written late by a slower thread.
    recording: threading.Lock = field(default_factory=threading.Lock)
    # Recorded pictures waiting for releases (by environment and workload, in recording order),
    # taken by the namespace's advancing thread.
    pending: dict = field(default_factory=dict)
    handed: threading.Condition = field(default_factory=threading.Condition)
    listed: set = field(default_factory=set)
    # Deployments changed since they were last recorded, in the order they changed. Events that
    # arrive while a record is being written collapse into one record of the newest picture: a
    # burst (a rollout's pods, replica sets and status) costs a record, not one per event.
    dirty: dict = field(default_factory=dict)

    def mark(self, name: str) -> None:
        with self.lock:
            self.dirty[name] = None

    def observed(self, observation: "Observation") -> None:
        """Queue a recorded picture for releases; it replaces an older one of the same workload
        still waiting (releases needs the newest, as the record did), which keeps its turn."""
        with self.handed:
            self.pending[(observation.environment.pk, observation.name)] = observation
            self.handed.notify()

    def next_observed(self, timeout: float) -> "Observation | None":
        """The picture waiting longest (None when none came within `timeout` seconds)."""
        with self.handed:
            if not self.pending and not self.handed.wait(timeout):
                return None
            key = next(iter(self.pending), None)
            return self.pending.pop(key) if key is not None else None

    def take(self) -> str | None:
        """The deployment changed longest ago and not recorded since (None when there is none)."""
        with self.lock:
            name = next(iter(self.dirty), None)
            self.dirty.pop(name, None)
            return name

    def replace(self, kind: str, items: list[dict]) -> None:
        with self.lock:
            self.objects[kind] = {o["metadata"]["uid"]: o for o in items}
            self.listed.add(kind)

    @property
    def synced(self) -> bool:
        """All three kinds listed once (client-go's HasSynced): before that, a Deployment
        would be judged without its pods (a rollout stuck on them would look merely slow)."""
        with self.lock:
            return len(self.listed) == len(kube.KINDS)

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


def lag(obj: dict, last: float) -> float:
    """Seconds from the API server's write of `obj` (its newest managedFields entry, which the
    server stamps on every write, to the second) to now, when the change has been recorded."""
    fields = (obj.get("metadata") or {}).get("managedFields") or []
    stamps = [parse_datetime(f["time"]) for f in fields if isinstance(f.get("time"), str)]
    stamps = [stamp for stamp in stamps if stamp is not None]
    if not stamps:
        return last
    return max((timezone.now() - max(stamps)).total_seconds(), 0.0)


def _keep_running(threads: dict, key: tuple, name: str, target: Callable, *args) -> None:
    """Start `target(*args)` in a thread kept in `threads[key]`, unless the one there still runs."""
    if key not in threads or not threads[key].is_alive():
        threads[key] = threading.Thread(target=target, args=args, name=name, daemon=True)
        threads[key].start()


def _controller(obj: dict) -> dict | None:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


class Watcher:
    """The streams of every (cluster, namespace) some environment uses, and their heartbeat.

    `run()` blocks (the management command); tests call `start()` and `shutdown()`.
    """

    def __init__(
        self,
        name: str = "watcher",
        heartbeat_seconds: float = 5.0,
        watch_timeout: int = 300,
        fence: Callable[[], bool] = lambda: True,
    ):
        self.name = name
        # Asked before every write: under leader election, "do we still hold the Lease?"
        self.fence = fence
        self.heartbeat_seconds = heartbeat_seconds
        self.watch_timeout = watch_timeout
        self.stop = threading.Event()
        self.threads: dict[tuple, threading.Thread] = {}
        self.advancers: dict[tuple, threading.Thread] = {}
        self.spaces: dict[tuple, Namespace] = {}
        self.wanted: set[tuple] = set()
        self.open: dict[tuple, kube.WatchStream] = {}
        self.open_lock = threading.Lock()
        self.reconnects = 0
        self.relists = 0
        self.expired = 0
        self.lag = 0.0
        self.main: threading.Thread | None = None

    def run(self) -> None:
        """Run until `stop` is set: start streams for every environment, beat, re-plan."""
        try:
            while not self.stop.is_set():
                self.plan()
                self.beat()
                self.stop.wait(self.heartbeat_seconds)
        finally:
            connection.close()

    def start(self) -> "Watcher":
        self.main = threading.Thread(target=self.run, name=f"{self.name}-plan", daemon=True)
        self.main.start()
        return self

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every stream now (their blocked reads are interrupted) and wait for the threads."""
        self.stop.set()
        with self.open_lock:
            streams = list(self.open.values())
        for stream in streams:
            stream.close()
        for space in list(self.spaces.values()):
            with space.handed:
                space.handed.notify_all()
        deadline = time.monotonic() + timeout
        for thread in [self.main, *self.threads.values(), *self.advancers.values()]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def plan(self) -> None:
        close_old_connections()
        pairs = set(Environment.objects.values_list("cluster_id", "namespace"))
        self.wanted = {(c, ns, kind) for c, ns in pairs for kind in kube.KINDS}
        for cluster_pk, namespace in pairs:
            # One Namespace per pair for the watcher's life: its three streams share it.
            space = self.spaces.setdefault((cluster_pk, namespace), Namespace(cluster_pk, namespace))
            _keep_running(self.advancers, (cluster_pk, namespace), f"advance-{namespace}", self.advance, space)
            for kind in kube.KINDS:
                key = (cluster_pk, namespace, kind)
                _keep_running(self.threads, key, f"watch-{namespace}-{kind}", self.stream, space, kind)

    def beat(self) -> None:
        close_old_connections()
        if not self.fence():
            return
        alive.touch()
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
        """List, then watch from the list's version; on 410 list again, on errors back off."""
        key = (space.cluster_pk, space.name, kind)
        backoff = BACKOFF_START
        try:
            while not self.stop.is_set() and key in self.wanted:
                try:
                    cluster = Cluster.objects.get(pk=space.cluster_pk)
                    items, version = kube.list_objects(cluster, space.name, kind)
                    self.relists += 1
                    space.replace(kind, items)
                    self.refresh_all(space)
                    backoff = BACKOFF_START
                    self.follow(cluster, space, kind, version)
                except kube.Expired:
                    self.expired += 1  # list again at once: that is what 410 asks for
                except IntegrationError as error:
                    self.reconnects += 1
                    log.warning("watch %s/%s: %s; retrying in %.1fs", space.name, kind, error, backoff)
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                except Cluster.DoesNotExist:
                    return
                except Exception:
                    log.exception("watch %s/%s crashed; restarting", space.name, kind)
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                finally:
                    close_old_connections()
        finally:
            connection.close()

    def follow(self, cluster, space: Namespace, kind: str, version: str) -> None:
        """Watch from `version` until the server ends the stream, re-watching from the last version."""
        key = (space.cluster_pk, space.name, kind)
        while not self.stop.is_set():
            stream = kube.WatchStream(cluster, space.name, kind, version, self.watch_timeout)
            with self.open_lock:
                self.open[key] = stream
            try:
                for event_type, obj in stream:
                    if self.stop.is_set():
                        return
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event_type in ("BOOKMARK", "ERROR"):
                        continue
                    space.apply(kind, event_type, obj)
                    name = space.deployment_of(kind, obj)
                    if name:
                        self.refresh(space, name)
                    self.lag = lag(obj, self.lag)
            finally:
                with self.open_lock:
                    self.open.pop(key, None)

    def open_streams(self) -> int:
        """Watch requests open right now (at most three per namespace)."""
        with self.open_lock:
            return len(self.open)

    def refresh_all(self, space: Namespace) -> None:
        for name in space.deployment_names():
            self.refresh(space, name)

    def refresh(self, space: Namespace, name: str) -> None:
        """Record what `name` looks like now: at once, or, when another stream is recording,
        by that stream right after (with whatever else changed meanwhile). What releases makes
        of it follows in the namespace's own thread (`advance`): the next change is written and
        shown while releases still works on this one."""
        if not space.synced:
            return
        space.mark(name)
        while space.dirty:
            if not space.recording.acquire(blocking=False):
                return  # the holder re-checks `dirty` after it lets go
            try:
                for observation in self.record_dirty(space):
                    space.observed(observation)
            finally:
                space.recording.release()

    def advance(self, space: Namespace) -> None:
        """Hand what was recorded to releases (events, states), in the order it was recorded;
        of several pictures of one workload waiting, only the newest. When that fails, the
        workload is recorded and handed over again after a backoff (the reconciler would catch
        up too, later)."""
        backoff = BACKOFF_START
        try:
            while not self.stop.is_set() and self._wanted(space):
                observation = space.next_observed(timeout=self.heartbeat_seconds)
                if observation is None or not self.fence():
                    continue  # nothing new, or no longer the leader: another watcher writes now
                try:
                    observation.advance()
                    backoff = BACKOFF_START
                except Exception:
                    log.exception("releases failed on %s/%s; recording it again", space.name, observation.name)
                    close_old_connections()
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    self.refresh(space, observation.name)
        finally:
            connection.close()

    def _wanted(self, space: Namespace) -> bool:
        return any((space.cluster_pk, space.name, kind) in self.wanted for kind in kube.KINDS)

    def record_dirty(self, space: Namespace) -> list["Observation"]:
        environments = list(Environment.objects.filter(cluster_id=space.cluster_pk, namespace=space.name))
        observed = []
        while (name := space.take()) is not None:
            snapshot = space.snapshot(name)
            for environment in environments:
                if not self.fence():
                    return observed  # no longer the leader: another watcher writes now
                observed.append(observe(environment, name, snapshot))
        return observed


@dataclass
class Observation:
    """A Workload row just written and shown to the pages, before releases has seen it."""

    environment: Environment
    name: str
    workload: Workload
    progress: rollout.Progress | None

    def advance(self) -> None:
        """Tell releases (events, states); tell the pages again if it filled in the image that
        should run (a first sighting: drift may show now)."""
        if self.progress is None:
            return
        expected = self.workload.expected_image
        workload_observed.send(sender=Workload, workload=self.workload, progress=self.progress)
        if self.workload.expected_image != expected:
            _tell_pages(self.environment, self.name, self.workload, self.progress)


def record(environment, name: str, snapshot: kube.Snapshot | None) -> Workload:
    """Write what the cluster runs for `name` and tell whoever listens."""
    observation = observe(environment, name, snapshot)
    observation.advance()
    return observation.workload


def observe(environment, name: str, snapshot: kube.Snapshot | None) -> Observation:
    """Write the Workload row for what the cluster runs and tell the pages: they should not
    wait for what releases makes of the change (progress events, states), which follows."""
    if snapshot is None:
        workload, _ = Workload.objects.update_or_create(
            environment=environment, name=name, defaults={"exists": False, "observed_at": timezone.now()}
        )
        return Observation(environment, name, workload, None)
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
    _tell_pages(environment, name, workload, progress)
    return Observation(environment, name, workload, progress)


def _tell_pages(environment, name: str, workload: Workload, progress: rollout.Progress) -> None:
    live.activity(
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
