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
import re
from datetime import UTC, datetime

from .errors import bad_request

MAGIC = b"k8s\x00"

# Each message is written as `"name:type=number …"`, the field's JSON name, its type (a scalar kind
# or a message name; `[T]` when repeated) and its field number.
MESSAGES = {
    "Unknown": "typeMeta:TypeMeta=1 raw:bytes=2",
    "TypeMeta": "apiVersion:string=1 kind:string=2",
    "ObjectMeta": (
        "name:string=1 generateName:string=2 namespace:string=3 resourceVersion:string=6 "
        "creationTimestamp:time=8 labels:map=11 annotations:map=12 finalizers:[string]=14"
    ),
    "Deployment": "metadata:ObjectMeta=1 spec:DeploymentSpec=2 status:Empty=3",
    "DeploymentSpec": (
        "replicas:int*=1 selector:LabelSelector=2 template:PodTemplateSpec=3 strategy:DeploymentStrategy=4 "
        "minReadySeconds:int=5 revisionHistoryLimit:int*=6 paused:bool=7 progressDeadlineSeconds:int*=9"
    ),
    "DeploymentStrategy": "type:string=1 rollingUpdate:RollingUpdateDeployment=2",
    "RollingUpdateDeployment": "maxUnavailable:IntOrString=1 maxSurge:IntOrString=2",
    "IntOrString": "type:int=1 intVal:int=2 strVal:string=3",
    "LabelSelector": "matchLabels:map=1 matchExpressions:[LabelSelectorRequirement]=2",
    "LabelSelectorRequirement": "key:string=1 operator:string=2 values:[string]=3",
    "PodTemplateSpec": "metadata:ObjectMeta=1 spec:PodSpec=2",
    "PodSpec": (
        "containers:[Container]=2 restartPolicy:string=3 dnsPolicy:string=6 serviceAccountName:string=8 "
        "initContainers:[Container]=20"
    ),
    "Container": (
        "name:string=1 image:string=2 command:[string]=3 args:[string]=4 ports:[ContainerPort]=6 "
        "env:[EnvVar]=7 resources:Empty=8 imagePullPolicy:string=14"
    ),
    "ContainerPort": "name:string=1 containerPort:int=3 protocol:string=4",
    "EnvVar": "name:string=1 value:string=2",
    "Namespace": "metadata:ObjectMeta=1 spec:Empty=2",
    # `kubectl create secret generic|tls|docker-registry` and `kubectl create configmap`.
    "Secret": "metadata:ObjectMeta=1 data:bytesmap=2 type:string=3 stringData:map=4 immutable:bool=5",
    "ConfigMap": "metadata:ObjectMeta=1 data:map=2 binaryData:bytesmap=3 immutable:bool=4",
    # authorization/v1 and authentication/v1: what `kubectl auth can-i` / `auth whoami` send.
    "SelfSubjectAccessReview": "metadata:ObjectMeta=1 spec:SelfSubjectAccessReviewSpec=2",
    "SelfSubjectAccessReviewSpec": (
        "resourceAttributes:ResourceAttributes=1 nonResourceAttributes:NonResourceAttributes=2"
    ),
    "ResourceAttributes": (
        "namespace:string=1 verb:string=2 group:string=3 version:string=4 resource:string=5 "
        "subresource:string=6 name:string=7"
    ),
    "NonResourceAttributes": "path:string=1 verb:string=2",
    "SelfSubjectRulesReview": "metadata:ObjectMeta=1 spec:SelfSubjectRulesReviewSpec=2",
    "SelfSubjectRulesReviewSpec": "namespace:string=1",
    "SelfSubjectReview": "metadata:ObjectMeta=1",
    "Empty": "",
}
_FIELD = re.compile(r"^(?P<name>\w+):(?P<repeated>\[)?(?P<type>[\w*]+)\]?=(?P<number>\d+)$")


def _message(spec: str) -> dict[int, tuple[str, str, bool]]:
    """{field number: (json name, type, repeated)} of one message."""
    fields = {}
    for token in spec.split():
        match = _FIELD.match(token)
        if match is None:
            raise ValueError(f"bad protobuf field spec {token!r}")
        fields[int(match["number"])] = (match["name"], match["type"], bool(match["repeated"]))
    return fields


SCHEMA = {name: _message(spec) for name, spec in MESSAGES.items()}
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
