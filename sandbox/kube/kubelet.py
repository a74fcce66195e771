"""The kubelet stand-in: pod status, container restarts, Events and container logs.

Every pod's life is a pure function of the image tag, the time the kubelet first saw the pod
(`seen`, kept in the cluster's persisted side table "kubelet", so a restarted sandbox carries on
where it was) and three settings: `ready_after` (r), `crash_backoff` (b) and `terminate_after`.

* a normal image: ContainerCreating for r, then Running and Ready;
* a tag ending in `-missing`: ContainerCreating, ErrImagePull from r/2, then ImagePullBackOff; the
  pull is tried again after b, 2b, 4b, … (each failure is ErrImagePull again for r/2);
* a tag ending in `-crash`: ContainerCreating for r, then each container instance runs (not
  ready) for r and exits with status 1. The first restart is immediate; after that the kubelet
  backs off b, 2b, 4b, … capped at 30·b (the kubelet's 10 s … 5 min) in CrashLoopBackOff.
* a deleted pod is Terminating (deletionTimestamp set by the API server) until the kubelet has
  stopped its containers, `terminate_after` seconds later (or the grace period, if shorter), and
  then deletes it for good.

`next_change` says when a pod's status will next change by itself, so the controllers sleep
until then instead of polling. Events follow the kubelet's reasons and messages (Scheduled,
Pulling, Pulled, Created, Started, Killing, BackOff, Failed). `logs()` answers pods/log with the
lines each container instance printed: its start, its readiness, or its crash.
"""

import copy
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import bad_request
from .events import EventRecorder
from .store import Cluster, now_iso, parse_iso

NODE_NAME = "sandbox-node-1"
HOST_IP = "192.168.49.2"
SIDE = "kubelet"
CONTAINER_PORT = 8080


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_nano(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def image_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[-1] if ":" in last else ""


@dataclass
class Instance:
    """One run of a container: started at `start`, crashed at `end` (None while running)."""

    number: int
    start: float
    end: float | None
    crashes: bool


@dataclass
class Timeline:
    """What one container is doing at `now`, and when that changes next."""

    waiting: str = ""  # ContainerCreating / ErrImagePull / ImagePullBackOff / CrashLoopBackOff
    backoff: float = 0.0  # the current back-off, for the CrashLoopBackOff message
    instances: list[Instance] = field(default_factory=list)
    next_change: float | None = None
    pull_failures: int = 0

    @property
    def current(self) -> Instance | None:
        return self.instances[-1] if self.instances else None

    @property
    def restart_count(self) -> int:
        return max(0, len(self.instances) - 1)


class Kubelet:
    def __init__(
        self,
        cluster: Cluster,
        events: EventRecorder,
        ready_after: float,
        crash_backoff: float = 10.0,
        terminate_after: float | None = None,
    ):
        self.cluster = cluster
        self.events = events
        self.ready_after = ready_after
        self.backoff = crash_backoff
        self.cap = 30 * crash_backoff
        self.terminate_after = min(1.0, ready_after) if terminate_after is None else terminate_after

    # -------------------------------------------------------------- clock
    def clock(self, pod: dict) -> dict:
        """The kubelet's record of a pod ({"seen": epoch, "deleting": epoch}), made on first sight."""
        uid = pod["metadata"]["uid"]
        record = self.cluster.side.get(SIDE, {}).get(uid)
        if record is None:
            record = {"seen": time.time()}
            self.cluster.set_side(SIDE, uid, record)
        return record

    def forget(self, uid: str) -> None:
        self.cluster.set_side(SIDE, uid, None)

    # ----------------------------------------------------------- timeline
    def timeline(self, image: str, seen: float, now: float) -> Timeline:
        tag, r = image_tag(image), self.ready_after
        if tag.endswith("-missing"):
            return self._pull_failure(seen, now)
        line = Timeline()
        if now < seen + r:
            line.waiting, line.next_change = "ContainerCreating", seen + r
            return line
        crashes = tag.endswith("-crash")
        start, number = seen + r, 0
        while True:
            end = start + r if crashes else None
            if end is None or now < end:
                line.instances.append(Instance(number, start, None, crashes))
                line.next_change = end
                return line
            line.instances.append(Instance(number, start, end, crashes))
            backoff = 0.0 if number == 0 else min(self.backoff * 2 ** (number - 1), self.cap)
            if now < end + backoff:
                line.waiting, line.backoff, line.next_change = "CrashLoopBackOff", backoff, end + backoff
                return line
            start, number = end + backoff, number + 1

    def _pull_failure(self, seen: float, now: float) -> Timeline:
        r = self.ready_after
        line = Timeline()
        if now < seen + r / 2:
            line.waiting, line.next_change = "ContainerCreating", seen + r / 2
            return line
        failed_at, attempt = seen + r / 2, 0
        while True:
            line.pull_failures = attempt + 1
            if now < failed_at + r / 2:
                line.waiting, line.next_change = "ErrImagePull", failed_at + r / 2
                return line
            backoff = min(self.backoff * 2**attempt, self.cap)
            if now < failed_at + r / 2 + backoff:
                line.waiting, line.backoff = "ImagePullBackOff", backoff
                line.next_change = failed_at + r / 2 + backoff
                return line
            failed_at, attempt = failed_at + r / 2 + backoff, attempt + 1

    # -------------------------------------------------------------- status
    @staticmethod
    def is_ready(pod: dict) -> bool:
        condition = _condition(pod.get("status") or {}, "Ready")
        return bool(condition and condition["status"] == "True")

    def ready_since(self, pod: dict) -> float | None:
        """When the pod became Ready, from its timeline (finer than the condition's seconds)."""
        if not self.is_ready(pod):
            return None
        record = self.cluster.side.get(SIDE, {}).get(pod["metadata"]["uid"])
        if record is None:
            condition = _condition(pod["status"], "Ready")
            return parse_iso(condition["lastTransitionTime"]).timestamp()
        return record["seen"] + self.ready_after

    def is_available(self, pod: dict, min_ready_seconds: int) -> bool:
        since = self.ready_since(pod)
        return since is not None and time.time() - since >= (min_ready_seconds or 0)

    def sync(self, pod: dict) -> float | None:
        """Bring one pod's status up to date (writing it if it changed); return when it next
        changes by itself (epoch seconds), or None."""
        if pod["metadata"].get("deletionTimestamp"):
            return self._terminate(pod)
        first_sight = pod["metadata"]["uid"] not in self.cluster.side.get(SIDE, {})
        seen = self.clock(pod)["seen"]
        now = time.time()
        lines = {c["name"]: self.timeline(c.get("image", ""), seen, now) for c in pod["spec"].get("containers") or []}
        status = self.status(pod, seen, lines)
        if first_sight:
            self._record(pod, "Normal", "Scheduled", f"Successfully assigned {_pod_id(pod)} to {NODE_NAME}", "", True)
        if status != pod.get("status"):
            self._container_events(pod, lines)
            new = copy.deepcopy(pod)
            new["status"] = status
            self.cluster.update(new, manager="kubelet")
        changes = [t.next_change for t in lines.values() if t.next_change is not None]
        return min(changes) if changes else None

    def status(self, pod: dict, seen: float, lines: dict[str, Timeline]) -> dict:
        old = pod.get("status") or {}
        status = {k: v for k, v in old.items() if k in ("qosClass",)}
        ip = _pod_ip(pod["metadata"]["uid"])
        status.update(
            {
                "hostIP": HOST_IP,
                "hostIPs": [{"ip": HOST_IP}],
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": iso(seen),
            }
        )
        statuses = [self._container_status(pod, c, lines[c["name"]]) for c in pod["spec"].get("containers") or []]
        all_ready = bool(statuses) and all(c["ready"] for c in statuses)
        started = any("running" in c["state"] or c["restartCount"] for c in statuses)
        status["phase"] = "Running" if started else "Pending"
        status["containerStatuses"] = statuses
        old_conditions = {c["type"]: c for c in old.get("conditions") or []}
        ready = "True" if all_ready else "False"
        status["conditions"] = [
            _pod_condition(old_conditions, "PodReadyToStartContainers", "True"),
            _pod_condition(old_conditions, "Initialized", "True"),
            _pod_condition(old_conditions, "Ready", ready),
            _pod_condition(old_conditions, "ContainersReady", ready),
            _pod_condition(old_conditions, "PodScheduled", "True"),
        ]
        status.setdefault("qosClass", "BestEffort")
        return status

    def _container_status(self, pod: dict, container: dict, line: Timeline) -> dict:
        name, image = container["name"], container.get("image", "")
        current = line.current
        status = {
            "name": name,
            "image": image,
            "imageID": f"docker.io/{image}@sha256:{_digest(image)}" if current else "",
            "ready": bool(current and current.end is None and not current.crashes),
            "started": bool(current and current.end is None and not line.waiting),
            "restartCount": line.restart_count,
            "lastState": {},
        }
        if line.waiting:
            status["state"] = {"waiting": {"reason": line.waiting, **self._waiting_message(pod, container, line)}}
        else:
            status["state"] = {"running": {"startedAt": iso(current.start)}}
        finished = [i for i in line.instances if i.end is not None]
        if line.waiting == "CrashLoopBackOff" or (current and current.number > 0):
            last = finished[-1]
            status["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": iso(last.start),
                    "finishedAt": iso(last.end),
                    "containerID": _container_id(pod, name, last.number),
                }
            }
        if current:
            status["containerID"] = _container_id(pod, name, current.number)
        return status

    def _waiting_message(self, pod: dict, container: dict, line: Timeline) -> dict:
        name, image = container["name"], container.get("image", "")
        if line.waiting == "CrashLoopBackOff":
            return {"message": f"back-off {line.backoff:g}s restarting failed container={name} pod={_pod_ref(pod)}"}
        if line.waiting == "ImagePullBackOff":
            return {"message": f'Back-off pulling image "{image}"'}
        if line.waiting == "ErrImagePull":
            return {"message": _pull_error(image)}
        return {}

    # -------------------------------------------------------------- events
    def _record(self, pod, type_, reason, message, container: str = "", scheduler: bool = False) -> None:
        field_path = f"spec.containers{{{container}}}" if container else ""
        component, host = ("default-scheduler", "") if scheduler else ("kubelet", NODE_NAME)
        self.events.record(pod, type_, reason, message, component, field_path, host)

    def _container_events(self, pod: dict, lines: dict[str, Timeline]) -> None:
        """Events for what changed since the status the pod shows now."""
        old = {c["name"]: c for c in (pod.get("status") or {}).get("containerStatuses") or []}
        for container in pod["spec"].get("containers") or []:
            name, image = container["name"], container.get("image", "")
            line, before = lines[name], old.get(name) or {}
            before_waiting = ((before.get("state") or {}).get("waiting") or {}).get("reason", "")
            started = line.current is not None and not line.waiting
            was_running = "running" in (before.get("state") or {})
            if started and (not was_running or before.get("restartCount", 0) != line.restart_count):
                self._record(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', name)
                self._record(pod, "Normal", "Created", f"Created container: {name}", name)
                self._record(pod, "Normal", "Started", f"Started container {name}", name)
            if line.waiting == before_waiting:
                continue
            if line.waiting == "CrashLoopBackOff":
                message = f"Back-off restarting failed container {name} in pod {_pod_ref(pod)}"
                self._record(pod, "Warning", "BackOff", message, name)
            elif line.waiting == "ErrImagePull":
                self._record(pod, "Normal", "Pulling", f'Pulling image "{image}"', name)
                self._record(pod, "Warning", "Failed", _pull_error(image), name)
                self._record(pod, "Warning", "Failed", "Error: ErrImagePull", name)
            elif line.waiting == "ImagePullBackOff":
                self._record(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', name)
                self._record(pod, "Warning", "Failed", "Error: ImagePullBackOff", name)

    # --------------------------------------------------------- termination
    def _terminate(self, pod: dict) -> float | None:
        record = dict(self.clock(pod))
        now = time.time()
        if "deleting" not in record:
            record["deleting"] = now
            self.cluster.set_side(SIDE, pod["metadata"]["uid"], record)
            for container in pod["spec"].get("containers") or []:
                self._record(pod, "Normal", "Killing", f"Stopping container {container['name']}", container["name"])
        deadline = parse_iso(pod["metadata"]["deletionTimestamp"]).timestamp()
        done = min(record["deleting"] + self.terminate_after, deadline)
        if now < done:
            return done
        self.cluster.remove_terminated(pod)
        self.forget(pod["metadata"]["uid"])
        return None

    # ---------------------------------------------------------------- logs
    def logs(
        self, pod: dict, container: str, previous: bool, number: int | None = None
    ) -> tuple[list[tuple[float, str]], bool, int]:
        """The lines of a container's current (or previous, or `number`th) instance as
        (time, text), whether that instance still runs (more lines may come), and its number."""
        record = self.cluster.side.get(SIDE, {}).get(pod["metadata"]["uid"])
        spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
        image = spec.get("image", "")
        line = self.timeline(image, record["seen"], time.time()) if record else Timeline(waiting="ContainerCreating")
        instances = line.instances
        if number is not None and number < len(instances):
            instance = instances[number]
        elif previous:
            if len(instances) < 2:
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{pod["metadata"]["name"]}" not found'
                )
            instance = instances[-2]
        elif instances:
            instance = instances[-1]
        else:
            reason = "trying and failing to pull image" if line.waiting != "ContainerCreating" else line.waiting
            raise bad_request(
                f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: {reason}'
            )
        lines = self._instance_lines(container, image, instance)
        return lines, instance.end is None, instance.number

    def _instance_lines(self, container: str, image: str, instance: Instance) -> list[tuple[float, str]]:
        lines = [
            (instance.start, f"Starting {container} ({image}): sandbox stand-in, instance {instance.number}"),
        ]
        if instance.crashes:
            if instance.end is not None:
                lines.append(
                    (
                        instance.end,
                        f"fatal: the image tag ends in -crash, so {container} exits with status 1 "
                        f"{self.ready_after:g}s after it starts",
                    )
                )
            return lines
        lines.append((instance.start, f"Listening on 0.0.0.0:{CONTAINER_PORT}"))
        lines.append((instance.start, "Ready: serving requests"))
        return lines


def _condition(status: dict, type_: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def _pod_condition(old: dict, type_: str, status: str) -> dict:
    previous = old.get(type_)
    if previous and previous["status"] == status:
        return previous
    condition = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": now_iso()}
    if status == "False":
        condition["reason"] = "ContainersNotReady"
    return condition


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _container_id(pod: dict, name: str, number: int) -> str:
    return "containerd://" + _digest(f"{pod['metadata']['uid']}/{name}/{number}")


def _pod_ip(uid: str) -> str:
    value = int(_digest(uid)[:6], 16)
    return f"10.244.{value // 250 % 250}.{value % 250 + 2}"


def _pod_id(pod: dict) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def _pod_ref(pod: dict) -> str:
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta['uid']})"


def _pull_error(image: str) -> str:
    ref = image if "/" in image.split(":")[0] else f"docker.io/library/{image}"
    return (
        f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack image '
        f'"{ref}": failed to resolve reference "{ref}": {ref}: not found'
    )
