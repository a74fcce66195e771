"""Decode the Kubernetes protobuf request bodies that kubectl sends.

kubectl's typed clients (`kubectl create deployment`, `kubectl create namespace`) POST
`application/vnd.kubernetes.protobuf` and do not fall back to JSON on 415, so the fake must read
them. The envelope is the 4-byte magic `k8s\\0` followed by a `runtime.Unknown` message whose `raw`
field holds the object. Only the fields those commands fill in are described below (field numbers
from `k8s.io/api/{core,apps}/v1/generated.proto` and apimachinery); unknown fields are skipped.

Go's gogo-protobuf writes non-pointer fields even when empty, so empty strings, zeros, `false` and
zero timestamps are dropped to match the JSON `omitempty` view; pointer fields (type `int*`) keep
their zero.
"""

import base64
from datetime import UTC, datetime

from .errors import bad_request

MAGIC = b"k8s\x00"

# message → {field number: (json name, type, repeated)}; type is a scalar kind or a message name.
SCHEMA = {
    "Unknown": {1: ("typeMeta", "TypeMeta", False), 2: ("raw", "bytes", False)},
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "ObjectMeta": {
        1: ("name", "string", False),
        2: ("generateName", "string", False),
        3: ("namespace", "string", False),
        6: ("resourceVersion", "string", False),
        8: ("creationTimestamp", "time", False),
        11: ("labels", "map", False),
        12: ("annotations", "map", False),
        14: ("finalizers", "string", True),
    },
    "Deployment": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "DeploymentSpec", False),
        3: ("status", "Empty", False),
    },
    "DeploymentSpec": {
        1: ("replicas", "int*", False),
        2: ("selector", "LabelSelector", False),
        3: ("template", "PodTemplateSpec", False),
        4: ("strategy", "DeploymentStrategy", False),
        5: ("minReadySeconds", "int", False),
        6: ("revisionHistoryLimit", "int*", False),
        7: ("paused", "bool", False),
        9: ("progressDeadlineSeconds", "int*", False),
    },
    "DeploymentStrategy": {
        1: ("type", "string", False),
        2: ("rollingUpdate", "RollingUpdateDeployment", False),
    },
    "RollingUpdateDeployment": {
        1: ("maxUnavailable", "IntOrString", False),
        2: ("maxSurge", "IntOrString", False),
    },
    "IntOrString": {
        1: ("type", "int", False),
        2: ("intVal", "int", False),
        3: ("strVal", "string", False),
    },
    "LabelSelector": {
        1: ("matchLabels", "map", False),
        2: ("matchExpressions", "LabelSelectorRequirement", True),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string", False),
        2: ("operator", "string", False),
        3: ("values", "string", True),
    },
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "PodSpec": {
        2: ("containers", "Container", True),
        3: ("restartPolicy", "string", False),
        6: ("dnsPolicy", "string", False),
        8: ("serviceAccountName", "string", False),
        20: ("initContainers", "Container", True),
    },
    "Container": {
        1: ("name", "string", False),
        2: ("image", "string", False),
        3: ("command", "string", True),
        4: ("args", "string", True),
        6: ("ports", "ContainerPort", True),
        7: ("env", "EnvVar", True),
        8: ("resources", "Empty", False),
        14: ("imagePullPolicy", "string", False),
    },
    "ContainerPort": {
        1: ("name", "string", False),
        3: ("containerPort", "int", False),
        4: ("protocol", "string", False),
    },
    "EnvVar": {1: ("name", "string", False), 2: ("value", "string", False)},
    "Namespace": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "Empty", False)},
    # `kubectl create secret generic|tls|docker-registry` and `kubectl create configmap`.
    "Secret": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "bytesmap", False),
        3: ("type", "string", False),
        4: ("stringData", "map", False),
        5: ("immutable", "bool", False),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "map", False),
        3: ("binaryData", "bytesmap", False),
        4: ("immutable", "bool", False),
    },
    # authorization/v1 and authentication/v1: what `kubectl auth can-i` / `auth whoami` send.
    "SelfSubjectAccessReview": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "SelfSubjectAccessReviewSpec", False),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes", False),
        2: ("nonResourceAttributes", "NonResourceAttributes", False),
    },
    "ResourceAttributes": {
        1: ("namespace", "string", False),
        2: ("verb", "string", False),
        3: ("group", "string", False),
        4: ("version", "string", False),
        5: ("resource", "string", False),
        6: ("subresource", "string", False),
        7: ("name", "string", False),
    },
    "NonResourceAttributes": {1: ("path", "string", False), 2: ("verb", "string", False)},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "SelfSubjectRulesReviewSpec", False)},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string", False)},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta", False)},
    "Empty": {},
}
KIND_MESSAGES = {
    "Deployment",
    "Namespace",
    "Secret",
    "ConfigMap",
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SelfSubjectReview",
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """Yield (field number, wire type, value) for every field of one message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise bad_request(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes) -> str | None:
    seconds = next((_signed(v) for n, _, v in _fields(data) if n == 1), 0)
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(kind: str, value):
    if kind == "string":
        return value.decode()
    if kind in ("int", "int*"):
        return _signed(value)
    if kind == "bool":
        return bool(value)
    if kind == "bytes":
        return value
    if kind == "time":
        return _time(value)
    if kind == "map":
        entry = {n: v.decode() for n, _, v in _fields(value)}
        return entry.get(1, ""), entry.get(2, "")
    if kind == "bytesmap":  # map<string, bytes>: JSON carries the bytes in base64
        entry = dict((n, v) for n, _, v in _fields(value))
        return entry.get(1, b"").decode(), base64.b64encode(entry.get(2, b"")).decode()
    if kind == "IntOrString":
        fields = {n: v for n, _, v in _fields(value)}
        return fields.get(3, b"").decode() if fields.get(1) else _signed(fields.get(2, 0))
    return decode_message(kind, value)


def decode_message(name: str, data: bytes) -> dict:
    schema = SCHEMA[name]
    result: dict = {}
    for number, _, value in _fields(data):
        if number not in schema:
            continue
        key, kind, repeated = schema[number]
        decoded = _scalar(kind, value)
        if kind in ("map", "bytesmap"):
            result.setdefault(key, {})[decoded[0]] = decoded[1]
        elif repeated:
            result.setdefault(key, []).append(decoded)
        elif kind == "int*" or decoded not in (None, "", 0, False):
            # Only pointer fields ("int*") keep their zero value, like JSON omitempty.
            result[key] = decoded
    return result


def decode(body: bytes) -> dict:
    """A protobuf request body → the JSON-shaped object."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body without the k8s magic prefix")
    envelope = decode_message("Unknown", body[len(MAGIC) :])
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind")
    if kind not in KIND_MESSAGES:
        raise bad_request(f"protobuf bodies of kind {kind!r} are not supported by this sandbox")
    obj = decode_message(kind, envelope.get("raw", b""))
    return {"apiVersion": type_meta.get("apiVersion"), "kind": kind, **obj}
