"""`meta.k8s.io/v1` Table output, as the apiserver printers (`pkg/printers/internalversion`).

kubectl asks for it with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`. Columns with
`priority: 1` are shown only with `-o wide`.
"""

from datetime import UTC, datetime

from .selectors import selector_string
from .store import parse_iso


def human_duration(seconds: float) -> str:
    """apimachinery `duration.HumanDuration`."""
    seconds = int(seconds)
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    delta = datetime.now(UTC) - parse_iso(timestamp)
    return human_duration(delta.total_seconds())


def _age_of(obj: dict) -> str:
    return age(obj["metadata"].get("creationTimestamp"))


def col(name: str, type_: str = "string", priority: int = 0, fmt: str = "", desc: str = ""):
    column = {"name": name, "type": type_, "format": fmt, "description": desc, "priority": priority}
    return column


def _containers(template_spec: dict) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


# ------------------------------------------------------------------ printers
def _with_template(obj: dict, counts: list) -> list:
    """A row of a workload with a pod template: name, its `counts`, age, then the wide columns."""
    spec = obj.get("spec") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [obj["metadata"]["name"], *counts, _age_of(obj), names, images, selector_string(spec.get("selector"))]


def _deployment(obj: dict) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}"
    return _with_template(obj, [ready, status.get("updatedReplicas", 0), status.get("availableReplicas", 0)])


def _replicaset(obj: dict) -> list:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return _with_template(obj, [spec.get("replicas", 0), status.get("replicas", 0), status.get("readyReplicas", 0)])


def pod_reason(pod: dict) -> str:
    """The STATUS column: a container's waiting reason beats the phase."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return waiting["reason"]
    return reason


def _pod(obj: dict) -> list:
    status = obj.get("status") or {}
    containers = status.get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in containers)
    return [
        obj["metadata"]["name"],
        f"{ready}/{total}",
        pod_reason(obj),
        str(restarts),
        _age_of(obj),
        status.get("podIP") or "<none>",
        (obj.get("spec") or {}).get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _namespace(obj: dict) -> list:
    return [
        obj["metadata"]["name"],
        (obj.get("status") or {}).get("phase", "Active"),
        _age_of(obj),
    ]


def _event(obj: dict) -> list:
    involved = obj.get("involvedObject") or {}
    source = obj.get("source") or {}
    return [
        age(obj.get("lastTimestamp") or obj["metadata"].get("creationTimestamp")),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        ", ".join(v for v in (source.get("component"), source.get("host")) if v),
        obj.get("message", ""),
        age(obj.get("firstTimestamp") or obj["metadata"].get("creationTimestamp")),
        obj.get("count", 1),
        obj["metadata"]["name"],
    ]


def _lease(obj: dict) -> list:
    return [obj["metadata"]["name"], (obj.get("spec") or {}).get("holderIdentity", ""), _age_of(obj)]


_NAME = col("Name", fmt="name", desc="Name must be unique within a namespace.")
_AGE = col("Age", desc="CreationTimestamp")
# The apiserver's default table convertor describes the column at length.
_LONG_AGE = col(
    "Age", desc="CreationTimestamp is a timestamp representing the server time when this object was created."
)


def _with_template_columns(*counts: dict) -> list:
    """The columns of a workload with a pod template (deployments, replica sets), as `_with_template`
    fills them: name, its `counts`, age, then the wide ones."""
    return [
        _NAME,
        *counts,
        _AGE,
        col("Containers", priority=1, desc="Names of each container in the template."),
        col("Images", priority=1, desc="Images referenced by each container."),
        col("Selector", priority=1, desc="Label selector for pods."),
    ]


PRINTERS = {
    "deployments": (
        _with_template_columns(
            col("Ready", desc="Number of the pod with ready state"),
            col("Up-to-date", "integer", desc="Total number of non-terminated pods targeted"),
            col("Available", "integer", desc="Total number of available pods"),
        ),
        _deployment,
    ),
    "replicasets": (
        _with_template_columns(
            col("Desired", "integer", desc="Number of desired replicas."),
            col("Current", "integer", desc="Number of actual replicas."),
            col("Ready", "integer", desc="The number of ready replicas."),
        ),
        _replicaset,
    ),
    "pods": (
        [
            _NAME,
            col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
            col("Status", desc="The aggregate status of the containers in this pod."),
            col("Restarts", desc="The number of times the containers in this pod have restarted"),
            _AGE,
            col("IP", priority=1, desc="IP address allocated to the pod."),
            col("Node", priority=1, desc="Name of the Node this pod is assigned to."),
            col("Nominated Node", priority=1, desc="Nominated node name."),
            col("Readiness Gates", priority=1, desc="Pod readiness gates."),
        ],
        _pod,
    ),
    "namespaces": ([_NAME, col("Status", desc="The status of the namespace"), _AGE], _namespace),
    "events": (
        [
            col("Last Seen", desc="Time when last event occurred"),
            col("Type", desc="Type of this event."),
            col("Reason", desc="Why the action was taken."),
            col("Object", desc="The object that this event is about."),
            col("Subobject", priority=1, desc="Component of the object."),
            col("Source", priority=1, desc="The component reporting this event."),
            col("Message", desc="A human-readable description of the status of this operation."),
            col("First Seen", priority=1, desc="Time when first event occurred"),
            col("Count", "integer", priority=1, desc="Number of times this event occurred."),
            col("Name", priority=1, desc="Name of the event"),
        ],
        _event,
    ),
    "leases": (
        [_NAME, col("Holder", desc="The identity of the holder of the current lease."), _LONG_AGE],
        _lease,
    ),
}
# Kinds without a printer of their own (the apiserver's default table convertor).
DEFAULT_PRINTER = ([_NAME, _LONG_AGE], lambda obj: [obj["metadata"]["name"], _age_of(obj)])


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in accept


def row(resource: str, obj: dict, include: str = "Metadata") -> dict:
    _, printer = PRINTERS.get(resource, DEFAULT_PRINTER)
    result = {"cells": printer(obj)}
    if include == "Object":
        result["object"] = obj
    elif include != "None":
        result["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }
    return result


def table(resource: str, items: list[dict], rv: str, include: str = "Metadata", columns=True):
    """A Table for a list (or a single object: pass one item)."""
    body = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}}
    if columns:
        body["columnDefinitions"] = PRINTERS.get(resource, DEFAULT_PRINTER)[0]
    body["rows"] = [row(resource, obj, include) for obj in items]
    return body
