"""What kube-apiserver checks before anything is stored: decoding (types and unknown fields, per
`fieldValidation`), object names, field selectors and request options.

* Decoding walks a request body against `schema.py`. A value of the wrong JSON type is a 400 (Go's
  decoder cannot read it). Unknown fields are a 400 under `fieldValidation=Strict` (what kubectl
  sends), a `Warning` header under `Warn` (the default) and silence under `Ignore`; in the last two
  they are dropped, as Go's decoder drops them.
* Names: a DNS-1123 subdomain for most kinds, a DNS-1123 label for namespaces (422 Invalid).
* Field selectors: only the fields each kind's field-label conversion knows (400 BadRequest
  "field label not supported: …").
"""

import re

from . import schema
from .errors import ApiError, bad_request, invalid

SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{SUBDOMAIN}')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    f"end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{LABEL}')"
)
COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
# The field labels each resource's conversion functions accept (pkg/apis/*/v1/conversion.go).
FIELD_LABELS = {
    "deployments": COMMON_FIELDS,
    "replicasets": COMMON_FIELDS | {"status.replicas"},
    "pods": COMMON_FIELDS
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    },
    "namespaces": COMMON_FIELDS | {"status.phase"},
    "events": COMMON_FIELDS
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
}
GO_TYPES = {"integer": "int32", "boolean": "bool", "number": "float64", "string": "string"}
JSON_TYPES = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}


# ------------------------------------------------------------------------- names
def check_name(kind, name: str) -> None:
    """ValidateObjectMeta's name rule (422 Invalid)."""
    label = kind.resource == "namespaces"
    pattern, limit = (LABEL, 63) if label else (SUBDOMAIN, 253)
    if len(name) > limit:
        message = f"must be no more than {limit} characters"
    elif not re.fullmatch(pattern, name):
        message = LABEL_MESSAGE if label else SUBDOMAIN_MESSAGE
    else:
        return
    raise invalid(kind, name, [("metadata.name", f'Invalid value: "{name}": {message}')])


# ---------------------------------------------------------------- field selectors
def check_field_selector(resource: str, text: str | None) -> None:
    if not text:
        return
    for part in re.split(r",(?![^(]*\))", text):
        field = re.split(r"!=|==|=", part, maxsplit=1)[0].strip()
        if field and field not in FIELD_LABELS.get(resource, COMMON_FIELDS):
            raise bad_request(f"field label not supported: {field}")


# ---------------------------------------------------------------- request options
def check_dry_run(values: list[str]) -> bool:
    """`dryRun`: absent or "All" (anything else is a 400, as on kube-apiserver)."""
    for value in values:
        if value != "All":
            raise ApiError(
                400,
                "BadRequest",
                f'dryRun: Unsupported value: "{value}": supported values: "All"',
            )
    return bool(values)


def check_field_validation(value: str | None) -> str:
    if value in (None, ""):
        return "Warn"
    if value not in ("Ignore", "Warn", "Strict"):
        raise bad_request(
            f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", "Warn", "Strict"'
        )
    return value


# ---------------------------------------------------------------------- decoding
class Decoded:
    """The outcome of decoding a body: the object with unknown fields dropped, and what was dropped."""

    def __init__(self):
        self.unknown: list[str] = []


def decode(obj: dict, type_name: str, directive: str) -> list[str]:
    """Check `obj` against its type; drop unknown fields (raise under Strict). Returns the warnings."""
    result = Decoded()
    _object(obj, type_name, "", result, type_name)
    if not result.unknown:
        return []
    if directive == "Strict":
        fields = ", ".join(f'unknown field "{path}"' for path in result.unknown)
        raise _cannot_handle(type_name, f"strict decoding error: {fields}")
    if directive == "Ignore":
        return []
    return [f'unknown field "{path}"' for path in result.unknown]


def _cannot_handle(type_name: str, message: str) -> ApiError:
    type_ = schema.REGISTRY[type_name]
    version = type_.gvk[1] if type_.gvk else "v1"
    return bad_request(f'{type_name} in version "{version}" cannot be handled as a {type_name}: {message}')


def _object(obj: dict, type_name: str, path: str, result: Decoded, top: str) -> None:
    type_ = schema.REGISTRY[type_name]
    if type_.free:
        return
    for key in list(obj):
        spec = type_.fields.get(key)
        where = f"{path}.{key}" if path else key
        if spec is None:
            result.unknown.append(where)
            del obj[key]
            continue
        _value(obj[key], spec.type, where, result, top, type_name)


def _value(value, type_expr: str, path: str, result: Decoded, top: str, parent: str) -> None:
    if value is None:
        return
    if type_expr in GO_TYPES:
        return _scalar(value, type_expr, path, top, parent)
    if type_expr in ("Time", "MicroTime", "Quantity") and not isinstance(value, str | int | float):
        raise _type_error(value, "string", path, top, parent)
    if type_expr == "IntOrString" and not isinstance(value, str | int):
        raise _type_error(value, "intstr.IntOrString", path, top, parent)
    value_type, info = schema.map_value(type_expr), schema.list_info(type_expr)
    if value_type is not None:
        _map(value, value_type, path, result, top, parent)
    elif info is not None:
        _list(value, info.item, path, result, top, parent)
    elif type_expr == "any" and not isinstance(value, dict):
        raise _type_error(value, "object", path, top, parent)
    elif type_expr in schema.REGISTRY and type_expr != "any":
        if not isinstance(value, dict):
            raise _type_error(value, f"v1.{type_expr}", path, top, parent)
        _object(value, type_expr, path, result, top)


def _map(value, value_type: str, path: str, result: Decoded, top: str, parent: str) -> None:
    if not isinstance(value, dict):
        raise _type_error(value, f"map[string]{GO_TYPES.get(value_type, value_type)}", path, top, parent)
    for key, sub in value.items():
        _value(sub, value_type, f"{path}.{key}", result, top, parent)


def _list(value, item: str, path: str, result: Decoded, top: str, parent: str) -> None:
    if not isinstance(value, list):
        raise _type_error(value, f"[]{GO_TYPES.get(item, item)}", path, top, parent)
    for index, sub in enumerate(value):
        _value(sub, item, f"{path}[{index}]", result, top, parent)


def _scalar(value, type_expr: str, path: str, top: str, parent: str) -> None:
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[type_expr]
    if not ok:
        raise _type_error(value, GO_TYPES[type_expr], path, top, parent)


def _type_error(value, go_type: str, path: str, top: str, parent: str) -> ApiError:
    got = JSON_TYPES.get(type(value), "value")
    return _cannot_handle(top, f"json: cannot unmarshal {got} into Go struct field {parent}.{path} of type {go_type}")


def check_required_kind(body: dict, kind: str) -> None:
    """A body naming another kind is a 400, as the decoder reports it."""
    sent = body.get("kind")
    if sent and sent != kind:
        raise bad_request(f"the kind of the object ({sent}) does not match the resource ({kind})")


__all__ = [
    "check_dry_run",
    "check_field_selector",
    "check_field_validation",
    "check_name",
    "check_required_kind",
    "decode",
]
