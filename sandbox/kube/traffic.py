"""Traffic and metrics of the sandbox's workloads: a load balancer in front of every Deployment.

`GET /sandbox/traffic/{namespace}/{deployment}[/any/path]` is what a Service (kube-proxy) in
front of the Deployment answers: each request goes, round robin, to one of the Deployment's pods
that is Ready and not Terminating, as an EndpointSlice would list them; with none, 503. The pod
answers as its image tag says:

* a tag ending in `-errors` answers one request in ERROR_EVERY with 500;
* a tag ending in `-slow` adds SLOW_SECONDS of latency;
* any other tag answers 200 after a few milliseconds.

`GET /metrics` is the Prometheus text exposition of what was served, per pod and version (the
image tag): `sandbox_http_requests_total{namespace,deployment,pod,version,code}` and the
histogram `sandbox_http_request_duration_seconds{namespace,deployment,pod,version}`. Requests the
load balancer could not route count with `pod=""`, `version=""` and `code="503"`.

`LoadGenerator` plays the users: `rate` requests a second to every Deployment, recorded as if
served (without waiting out their latency), so the metrics move even when nobody probes.
"""

import threading
import time
from dataclasses import dataclass, field

from .kubelet import Kubelet, image_tag
from .selectors import selector_from_spec

ERROR_EVERY = 3
SLOW_SECONDS = 0.25
BASE_SECONDS = 0.002
JITTER_SECONDS = 0.010
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PREFIX = "/sandbox/traffic/"


@dataclass
class Answer:
    """What the load balancer (and behind it, one pod) answered."""

    status: int
    pod: str = ""
    version: str = ""
    seconds: float = 0.0
    message: str = ""


@dataclass
class Series:
    """Counters of one (namespace, deployment, pod, version)."""

    codes: dict = field(default_factory=dict)
    buckets: list = field(default_factory=lambda: [0] * len(BUCKETS))
    total_seconds: float = 0.0
    count: int = 0

    def observe(self, status: int, seconds: float) -> None:
        self.codes[str(status)] = self.codes.get(str(status), 0) + 1
        if not seconds and status == 503:
            return  # never reached a pod: no latency to record
        self.count += 1
        self.total_seconds += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1


def _serves(pod: dict) -> bool:
    """Ready and not Terminating (Terminating pods leave the endpoints at once)."""
    return not pod["metadata"].get("deletionTimestamp") and Kubelet.is_ready(pod)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: dict) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


class Traffic:
    """Routes requests to ready pods and counts what they answered (thread-safe)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.lock = threading.Lock()
        self.series: dict[tuple, Series] = {}
        self.turns: dict[tuple, int] = {}

    def endpoints(self, namespace: str, name: str) -> list[dict] | None:
        """The ready pods behind Deployment `name`, by name; None when there is no such Deployment."""
        with self.cluster.lock:
            deployment = self.cluster.find("deployments", namespace, name)
            if deployment is None:
                return None
            selects = selector_from_spec(deployment["spec"].get("selector"))
            pods = [
                p
                for p in self.cluster.raw("pods", namespace)
                if selects(p["metadata"].get("labels") or {}) and _serves(p)
            ]
            return sorted(pods, key=lambda p: p["metadata"]["name"])

    def route(self, namespace: str, name: str) -> Answer:
        """Pick a ready pod round robin and decide its answer (the caller waits out `seconds`)."""
        pods = self.endpoints(namespace, name)
        if pods is None:
            return Answer(404, message=f"no deployment {namespace}/{name}")
        with self.lock:
            if not pods:
                self._count((namespace, name, "", ""), 503, 0.0)
                return Answer(503, message=f"no ready pods behind {namespace}/{name}")
            turn = self.turns.get((namespace, name), 0)
            self.turns[(namespace, name)] = turn + 1
            pod = pods[turn % len(pods)]
            tag = image_tag(pod["spec"]["containers"][0]["image"])
            key = (namespace, name, pod["metadata"]["name"], tag)
            served = self.series[key].count if key in self.series else 0
            seconds = BASE_SECONDS + JITTER_SECONDS * ((served * 7919) % 100) / 100
            if tag.endswith("-slow"):
                seconds += SLOW_SECONDS
            status = 500 if tag.endswith("-errors") and served % ERROR_EVERY == ERROR_EVERY - 1 else 200
            self._count(key, status, seconds)
        return Answer(status, pod["metadata"]["name"], tag, seconds)

    def _count(self, key: tuple, status: int, seconds: float) -> None:
        self.series.setdefault(key, Series()).observe(status, seconds)

    def exposition(self) -> str:
        """Everything counted so far, in Prometheus's text format 0.0.4."""
        with self.lock:
            items = sorted(
                (key, Series(dict(s.codes), list(s.buckets), s.total_seconds, s.count))
                for key, s in self.series.items()
            )
        lines = [
            "# HELP sandbox_http_requests_total Requests answered, by pod, version and status code.",
            "# TYPE sandbox_http_requests_total counter",
        ]
        for key, series in items:
            for code, count in sorted(series.codes.items()):
                lines.append(f"sandbox_http_requests_total{_labels({**_names(key), 'code': code})} {count}")
        lines += [
            "# HELP sandbox_http_request_duration_seconds Time pods took to answer, by pod and version.",
            "# TYPE sandbox_http_request_duration_seconds histogram",
        ]
        for key, series in items:
            if series.count:
                lines += _histogram(_names(key), series)
        return "\n".join(lines) + "\n"


def _names(key: tuple) -> dict:
    namespace, deployment, pod, version = key
    return {"namespace": namespace, "deployment": deployment, "pod": pod, "version": version}


def _histogram(names: dict, series: Series) -> list[str]:
    metric = "sandbox_http_request_duration_seconds"
    lines = [
        f"{metric}_bucket{_labels({**names, 'le': str(bound)})} {count}"
        for bound, count in zip(BUCKETS, series.buckets, strict=True)
    ]
    lines.append(f"{metric}_bucket{_labels({**names, 'le': '+Inf'})} {series.count}")
    lines.append(f"{metric}_sum{_labels(names)} {series.total_seconds:.6f}")
    lines.append(f"{metric}_count{_labels(names)} {series.count}")
    return lines


class LoadGenerator:
    """`rate` requests a second to every Deployment of the cluster, in a daemon thread."""

    def __init__(self, traffic: Traffic, rate: float):
        self.traffic, self.rate = traffic, rate
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sandbox-load", daemon=True)

    def start(self) -> "LoadGenerator":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopped.wait(1 / self.rate):
            with self.traffic.cluster.lock:
                names = [
                    (d["metadata"]["namespace"], d["metadata"]["name"]) for d in self.traffic.cluster.raw("deployments")
                ]
            for namespace, name in names:
                self.traffic.route(namespace, name)


def split_path(path: str) -> tuple[str, str] | None:
    """(namespace, deployment) of a `/sandbox/traffic/{ns}/{name}[/…]` path, or None."""
    parts = path.removeprefix(PREFIX).split("/")
    if not path.startswith(PREFIX) or len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def serve(handler, traffic: Traffic, path: str) -> None:
    """Answer one request to the load balancer on `handler` (waiting out the pod's latency)."""
    target = split_path(path)
    if target is None:
        handler.send_json(404, {"error": "use /sandbox/traffic/{namespace}/{deployment}"})
        return
    answer = traffic.route(*target)
    time.sleep(answer.seconds)
    headers = {"X-Pod": answer.pod, "X-Version": answer.version}
    if answer.status == 200:
        handler.send_json(200, {"pod": answer.pod, "version": answer.version}, headers)
    else:
        handler.send_json(
            answer.status, {"error": answer.message or "internal server error", "pod": answer.pod}, headers
        )
