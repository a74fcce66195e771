"""core/v1 Events as client-go's event recorder writes them: one object per (object, reason,
message, type, source), whose `count` and `lastTimestamp` go up when the same thing happens again,
and which expire after `ttl` seconds (kube-apiserver's --event-ttl, 1 h), so a long-running
sandbox does not pile them up.
"""

import time

from .store import Cluster, now_iso, parse_iso

EVENT_TTL = 3600.0


class EventRecorder:
    def __init__(self, cluster: Cluster, ttl: float = EVENT_TTL):
        self.cluster = cluster
        self.ttl = ttl

    def record(
        self,
        obj: dict,
        type_: str,
        reason: str,
        message: str,
        component: str,
        field_path: str = "",
        host: str = "",
    ) -> None:
        """Record (or count again) an event about `obj`. Caller holds the cluster lock."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        source = {"component": component, **({"host": host} if host else {})}
        same = self._find(namespace, meta["uid"], field_path, type_, reason, message, source)
        now = now_iso()
        if same is not None:
            event = {**same, "count": same.get("count", 1) + 1, "lastTimestamp": now}
            self.cluster.update(event, manager=component)
            return
        involved = {
            "kind": obj["kind"],
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": obj["apiVersion"],
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        event = {
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}"},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        self.cluster.create("events", namespace, event, manager=component)

    def _find(self, namespace, uid, field_path, type_, reason, message, source) -> dict | None:
        for event in self.cluster.raw("events", namespace):
            involved = event.get("involvedObject") or {}
            if (
                involved.get("uid") == uid
                and involved.get("fieldPath", "") == field_path
                and event.get("reason") == reason
                and event.get("message") == message
                and event.get("type") == type_
                and event.get("source") == source
            ):
                return event
        return None

    def expire(self) -> float | None:
        """Delete events older than the TTL; return when the next one expires (epoch seconds)."""
        now, next_expiry = time.time(), None
        for event in list(self.cluster.raw("events")):
            expires = parse_iso(event.get("lastTimestamp") or event["metadata"]["creationTimestamp"]).timestamp()
            expires += self.ttl
            if expires <= now:
                meta = event["metadata"]
                self.cluster.delete("events", meta["namespace"], meta["name"])
            elif next_expiry is None or expires < next_expiry:
                next_expiry = expires
        return next_expiry
