"""The OpenAPI documents kubectl validates and patches with, built from `schema.py`.

* `/openapi/v3` lists one document per group/version (`api/v1`, `apis/apps/v1`, …), each at
  `/openapi/v3/<path>?hash=<sha512>`; kubectl 1.27+ reads these to learn that the server validates
  fields itself (`fieldValidation` on PATCH) and to compute strategic merge patches.
* `/openapi/v2` is the Swagger 2.0 document: JSON, or the gnostic protobuf encoding that
  client-go's `OpenAPISchema()` asks for (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`,
  answered as `application/octet-stream` like kube-openapi does); kubectl before 1.23 validates
  with it client-side, and newer ones fall back to it when v3 is missing.

The shapes follow kube-apiserver's documents (paths per resource with `x-kubernetes-action` and
`x-kubernetes-group-version-kind`, the patch content types, the query parameters); descriptions
are left out. Types the sandbox does not describe in detail are free-form objects.
"""

import hashlib
import json
from functools import cache

from . import reviews, schema
from .store import KINDS

INFO = {"title": "Kubernetes", "version": "v1.32.4"}
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
PATCH_TYPES = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
]
WRITE_PARAMS = ["dryRun", "fieldManager", "fieldValidation"]
LIST_PARAMS = [
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
]
BOOLEAN_PARAMS = {"allowWatchBookmarks", "force", "watch", "sendInitialEvents", "follow", "previous", "timestamps"}
INTEGER_PARAMS = {"limit", "timeoutSeconds", "gracePeriodSeconds", "tailLines", "limitBytes", "sinceSeconds"}
# group/version → the review resources it serves: [(resource, kind)].
REVIEWS: dict[str, list] = {}
for (_gv, _resource), (_kind, _) in sorted(reviews.REVIEWS.items()):
    REVIEWS.setdefault(_gv, []).append((_resource, _kind))


# ------------------------------------------------------------------------ schemas
def _ref(name: str, v3: bool) -> dict:
    qualified = schema.SPECIAL.get(name) or schema.REGISTRY[name].qualified
    target = f"#/components/schemas/{qualified}" if v3 else f"#/definitions/{qualified}"
    return {"allOf": [{"$ref": target}]} if v3 else {"$ref": target}


def render(type_expr: str, v3: bool, strategy: str = "") -> dict:
    """The schema of one field type expression."""
    if type_expr in ("string", "integer", "boolean", "number"):
        return {"type": type_expr}
    if type_expr == "any":
        return {"type": "object", **({"x-kubernetes-preserve-unknown-fields": True} if v3 else {})}
    value = schema.map_value(type_expr)
    if value is not None:
        body = {"type": "object", "additionalProperties": render(value, v3)}
        if strategy == "atomic":
            body["x-kubernetes-map-type"] = "atomic"
        return body
    info = schema.list_info(type_expr)
    if info is not None:
        return _list(info, v3, strategy)
    body = _ref(type_expr, v3)
    if strategy == "retainKeys":
        body["x-kubernetes-patch-strategy"] = "retainKeys"
    return body


def _list(info: schema.ListInfo, v3: bool, strategy: str) -> dict:
    body = {"type": "array", "items": render(info.item, v3), "x-kubernetes-list-type": info.kind}
    if info.kind == "set":
        body["x-kubernetes-patch-strategy"] = "merge"
    elif info.kind == "map":
        body["x-kubernetes-list-map-keys"] = list(info.keys)
        body["x-kubernetes-patch-merge-key"] = info.keys[0]
        body["x-kubernetes-patch-strategy"] = "merge" + (",retainKeys" if strategy == "retainKeys" else "")
    return body


def type_schema(type_: schema.Type, v3: bool) -> dict:
    if type_.free:
        return {"type": "object", **({"x-kubernetes-preserve-unknown-fields": True} if v3 else {})}
    body = {
        "type": "object",
        "properties": {name: render(f.type, v3, f.strategy) for name, f in sorted(type_.fields.items())},
    }
    required = sorted(name for name, f in type_.fields.items() if f.required)
    if required:
        body["required"] = required
    if type_.name in schema.ATOMIC_TYPES:
        body["x-kubernetes-map-type"] = "atomic"
    if type_.gvk:
        group, version, kind = type_.gvk
        body["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return body


def special_schemas(v3: bool) -> dict:
    time = {"type": "string", "format": "date-time"}
    if v3:
        int_or_string = {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}
        quantity = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    else:
        int_or_string = {"type": "string", "format": "int-or-string"}
        quantity = {"type": "string"}
    return {
        schema.SPECIAL["Time"]: time,
        schema.SPECIAL["MicroTime"]: {"type": "string", "format": "date-time"},
        schema.SPECIAL["IntOrString"]: int_or_string,
        schema.SPECIAL["Quantity"]: quantity,
    }


def all_schemas(v3: bool) -> dict:
    schemas = {t.qualified: type_schema(t, v3) for t in schema.REGISTRY.values()}
    return {**schemas, **special_schemas(v3)}


# ------------------------------------------------------------------------- paths
def _param(name: str, where: str = "query", v3: bool = True, required: bool = False) -> dict:
    kind = "boolean" if name in BOOLEAN_PARAMS else "integer" if name in INTEGER_PARAMS else "string"
    body = {"name": name, "in": where, "uniqueItems": True}
    if required or where == "path":
        body["required"] = True
    if v3:
        body["schema"] = {"type": kind, "uniqueItems": True}
        del body["uniqueItems"]
    else:
        body["type"] = kind
    return body


def _operation(action: str, gvk: tuple, type_name: str, params: list[str], v3: bool, body_types=None) -> dict:
    group, version, kind = gvk
    op = {
        "operationId": f"{action}{kind}",
        "parameters": [_param(p, v3=v3) for p in params],
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "kind": kind, "version": version},
    }
    target = _ref(type_name, v3) if type_name else {"type": "string"}
    if v3:
        op["responses"]["200"]["content"] = {"application/json": {"schema": target}}
        if body_types:
            op["requestBody"] = {
                "content": {t: {"schema": _ref(body_types[1], True)} for t in body_types[0]},
                "required": True,
            }
    else:
        op["responses"]["200"]["schema"] = target
        op["produces"] = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
        if body_types:
            op["consumes"] = body_types[0]
            op["parameters"].insert(
                0, {"name": "body", "in": "body", "required": True, "schema": _ref(body_types[1], False)}
            )
    return op


def _resource_paths(kind, v3: bool) -> dict:
    """Collection, item and subresource paths of one stored resource."""
    group, version = (kind.group, kind.version)
    gvk = (group, version, kind.kind)
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    scope = f"{root}/namespaces/{{namespace}}/{kind.resource}" if kind.namespaced else f"{root}/{kind.resource}"
    json_body = (["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"], kind.kind)
    patch_body = (PATCH_TYPES, "Patch")
    namespace = [_param("namespace", "path", v3)] if kind.namespaced else []
    paths = {
        scope: {
            "get": _operation("list", gvk, f"{kind.kind}List", LIST_PARAMS, v3),
            "post": _operation("post", gvk, kind.kind, WRITE_PARAMS, v3, json_body),
            "delete": _operation("deletecollection", gvk, "Status", [*LIST_PARAMS, "dryRun"], v3),
            "parameters": namespace,
        },
        f"{scope}/{{name}}": {
            "get": _operation("get", gvk, kind.kind, [], v3),
            "put": _operation("put", gvk, kind.kind, WRITE_PARAMS, v3, json_body),
            "patch": _operation("patch", gvk, kind.kind, [*WRITE_PARAMS, "force"], v3, patch_body),
            "delete": _operation("delete", gvk, "Status", ["dryRun", "gracePeriodSeconds", "propagationPolicy"], v3),
            "parameters": [_param("name", "path", v3), *namespace],
        },
    }
    if kind.namespaced:
        paths[f"{root}/{kind.resource}"] = {"get": _operation("list", gvk, f"{kind.kind}List", LIST_PARAMS, v3)}
    for sub in kind.subresources:
        sub_type = "Scale" if sub == "scale" else kind.kind
        sub_gvk = ("autoscaling", "v1", "Scale") if sub == "scale" else gvk
        sub_body = (json_body[0], sub_type)
        paths[f"{scope}/{{name}}/{sub}"] = {
            "get": _operation("get", sub_gvk, sub_type, [], v3),
            "put": _operation("put", sub_gvk, sub_type, WRITE_PARAMS, v3, sub_body),
            "patch": _operation("patch", sub_gvk, sub_type, [*WRITE_PARAMS, "force"], v3, patch_body),
            "parameters": [_param("name", "path", v3), *namespace],
        }
    if kind.resource == "pods":
        log_params = ["container", "follow", "limitBytes", "previous", "sinceSeconds", "tailLines", "timestamps"]
        paths[f"{scope}/{{name}}/log"] = {
            "get": _operation("get", gvk, "", log_params, v3),
            "parameters": [_param("name", "path", v3), *namespace],
        }
    return paths


def _review_paths(group_version: str, v3: bool) -> dict:
    group, version = group_version.split("/")
    paths = {}
    for resource, kind in REVIEWS[group_version]:
        body = (["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"], kind)
        paths[f"/apis/{group_version}/{resource}"] = {
            "post": _operation("post", (group, version, kind), kind, WRITE_PARAMS, v3, body)
        }
    return paths


def _path(kind) -> str:
    return f"apis/{kind.api_version}" if kind.group else f"api/{kind.version}"


def group_versions() -> list[str]:
    """`api/v1`, `apis/apps/v1`, … : every group/version the sandbox serves."""
    stored = sorted({_path(k) for k in KINDS.values()})
    return stored + [f"apis/{gv}" for gv in REVIEWS]


def paths_for(group_version_path: str, v3: bool) -> dict:
    paths = {}
    if group_version_path.startswith("apis/") and group_version_path[5:] in REVIEWS:
        return _review_paths(group_version_path[5:], v3)
    for kind in KINDS.values():
        if _path(kind) == group_version_path:
            paths.update(_resource_paths(kind, v3))
    return paths


# ------------------------------------------------------------------------ documents
@cache
def v3_document(group_version_path: str) -> bytes:
    doc = {
        "openapi": "3.0.0",
        "info": INFO,
        "paths": paths_for(group_version_path, True),
        "components": {"schemas": all_schemas(True)},
    }
    return json.dumps(doc, sort_keys=True).encode()


def v3_hash(group_version_path: str) -> str:
    return hashlib.sha512(v3_document(group_version_path)).hexdigest().upper()


@cache
def v3_index() -> bytes:
    paths = {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={v3_hash(gv)}"} for gv in group_versions()}
    return json.dumps({"paths": paths}, sort_keys=True).encode()


@cache
def v2_json() -> dict:
    paths = {}
    for gv in group_versions():
        paths.update(paths_for(gv, False))
    return {"swagger": "2.0", "info": INFO, "paths": paths, "definitions": all_schemas(False)}


@cache
def v2_bytes() -> bytes:
    return json.dumps(v2_json(), sort_keys=True).encode()


@cache
def v2_protobuf() -> bytes:
    return _document(v2_json())


# --------------------------------------------------- gnostic OpenAPIv2.proto encoding
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _str(number: int, text: str) -> bytes:
    return _bytes(number, text.encode()) if text else b""


def _bool(number: int, value: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if value else b""


def _named_any(number: int, name: str, value) -> bytes:
    # NamedAny{name=1, value=2 Any{yaml=2}}: JSON is valid YAML.
    return _bytes(number, _str(1, name) + _bytes(2, _str(2, json.dumps(value))))


def _extensions(number: int, body: dict) -> bytes:
    return b"".join(_named_any(number, k, v) for k, v in sorted(body.items()) if k.startswith("x-"))


def _schema(body: dict) -> bytes:
    """gnostic Schema: _ref=1 format=2 required=19 additional_properties=21 type=22 items=23
    all_of=24 properties=25 vendor_extension=31."""
    out = _str(1, body.get("$ref", "")) + _str(2, body.get("format", ""))
    out += b"".join(_str(19, r) for r in body.get("required", []))
    if "additionalProperties" in body:
        out += _bytes(21, _bytes(1, _schema(body["additionalProperties"])))
    if "type" in body:
        out += _bytes(22, _str(1, body["type"]))
    if "items" in body:
        out += _bytes(23, _bytes(1, _schema(body["items"])))
    if "properties" in body:
        named = b"".join(_bytes(1, _str(1, k) + _bytes(2, _schema(v))) for k, v in sorted(body["properties"].items()))
        out += _bytes(25, named)
    return out + _extensions(31, body)


def _parameter(param: dict) -> bytes:
    if param["in"] == "body":
        body = _str(2, param["name"]) + _str(3, "body") + _bool(4, True) + _bytes(5, _schema(param["schema"]))
        return _bytes(1, _bytes(1, body))  # ParametersItem.parameter → Parameter.body_parameter
    if param["in"] == "path":
        sub = _bool(1, True) + _str(2, "path") + _str(4, param["name"]) + _str(5, param["type"])
        return _bytes(1, _bytes(2, _bytes(4, sub)))  # NonBodyParameter.path_parameter_sub_schema
    sub = _bool(1, param.get("required", False)) + _str(2, "query") + _str(4, param["name"]) + _str(6, param["type"])
    sub += _bool(20, True)
    return _bytes(1, _bytes(2, _bytes(3, sub)))  # NonBodyParameter.query_parameter_sub_schema


def _operation_pb(op: dict) -> bytes:
    out = _str(5, op["operationId"])
    out += b"".join(_str(6, t) for t in op.get("produces", []))
    out += b"".join(_str(7, t) for t in op.get("consumes", []))
    out += b"".join(_bytes(8, _parameter(p)) for p in op["parameters"])
    responses = b""
    for code, response in op["responses"].items():
        value = _str(1, response["description"])
        if "schema" in response:
            value += _bytes(2, _bytes(1, _schema(response["schema"])))
        responses += _bytes(1, _str(1, code) + _bytes(2, _bytes(1, value)))
    return out + _bytes(9, responses) + _extensions(13, op)


VERB_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


def _path_item(item: dict) -> bytes:
    out = b"".join(_bytes(VERB_FIELDS[verb], _operation_pb(op)) for verb, op in item.items() if verb in VERB_FIELDS)
    return out + b"".join(_bytes(9, _parameter(p)) for p in item.get("parameters", []))


def _document(doc: dict) -> bytes:
    out = _str(1, doc["swagger"]) + _bytes(2, _str(1, doc["info"]["title"]) + _str(2, doc["info"]["version"]))
    paths = b"".join(_bytes(2, _str(1, p) + _bytes(2, _path_item(item))) for p, item in sorted(doc["paths"].items()))
    out += _bytes(8, paths)
    definitions = b"".join(
        _bytes(1, _str(1, name) + _bytes(2, _schema(body))) for name, body in sorted(doc["definitions"].items())
    )
    return out + _bytes(9, definitions)
