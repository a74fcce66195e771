"""The three PATCH flavours of the apiserver.

* JSON merge patch (RFC 7386, `application/merge-patch+json`): maps merge, `null` deletes, lists
  are replaced.
* Strategic merge patch (`application/strategic-merge-patch+json`): like a merge patch, but lists
  of the Kubernetes types listed in `MERGE_KEYS` are merged element by element on their merge key
  (containers by `name`, ports by `containerPort`, ...), and the directives `$patch` (`delete` /
  `replace` / `merge`), `$setElementOrder/<list>`, `$retainKeys` and
  `$deleteFromPrimitiveList/<list>` are understood. Which lists merge is decided by field name, a
  simplification of the Go struct tags that is exact for Deployments, ReplicaSets and Pods.
* JSON patch (RFC 6902, `application/json-patch+json`): add, remove, replace, move, copy, test.
"""

import copy

from .errors import ApiError

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# field name → merge key, from the `patchMergeKey` struct tags of core/v1 and apps/v1.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "readinessGates": "conditionType",
    "containerStatuses": "name",
}
# Lists of scalars merged as sets (patchStrategy "merge" without a key).
MERGE_SCALAR_LISTS = {"finalizers"}


def bad_patch(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


# ------------------------------------------------------------------ merge patch
def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -------------------------------------------------------------- strategic merge
def strategic_merge(target, patch):
    """Apply a strategic merge patch to `target` (not modified) and return the result."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = _retained(copy.deepcopy(target) if isinstance(target, dict) else {}, patch)
    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
        else:
            _merge_field(result, key, value)
    for name, order in orders.items():
        if name in result:
            result[name] = _apply_order(name, result[name], order)
    return result


def _retained(result: dict, patch: dict) -> dict:
    if "$retainKeys" not in patch:
        return result
    keep = set(patch["$retainKeys"])
    return {k: v for k, v in result.items() if k in keep}


def _merge_field(result: dict, key: str, value) -> None:
    """One field of a strategic merge: null deletes, lists merge by key, maps recurse."""
    if value is None:
        result.pop(key, None)
    elif isinstance(value, list):
        result[key] = _merge_list(key, result.get(key), value)
    elif isinstance(value, dict):
        merged = strategic_merge(result.get(key), value)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    else:
        result[key] = value


def _merge_list(field: str, current, patch: list) -> list:
    current = current if isinstance(current, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in MERGE_SCALAR_LISTS:
        return current + [copy.deepcopy(v) for v in patch if v not in current]
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    result = copy.deepcopy(current)
    for item in patch:
        if key not in item:
            raise bad_patch(f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _apply_order(field: str, items: list, order: list) -> list:
    """`$setElementOrder/<field>`: listed elements first in that order, then the others."""
    key = MERGE_KEYS.get(field)

    def ident(item):
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    listed = sorted((item for item in items if ident(item) in wanted), key=lambda i: wanted.index(ident(i)))
    return listed + [item for item in items if ident(item) not in wanted]


# ------------------------------------------------------------------- JSON patch
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_patch(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts: list[str], path: str):
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_index(node, part, path)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise bad_patch(f"doc is missing path: {path!r}")
    return node


def _index(node: list, part: str, path: str, adding: bool = False) -> int:
    if part == "-" and adding:
        return len(node)
    try:
        index = int(part)
    except ValueError as exc:
        raise bad_patch(f"invalid array index in {path!r}") from exc
    if not 0 <= index <= len(node) - (0 if adding else 1):
        raise bad_patch(f"array index out of bounds in {path!r}")
    return index


def _get(doc, path: str):
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        return parent[_index(parent, parts[-1], path)]
    if not isinstance(parent, dict) or parts[-1] not in parent:
        raise bad_patch(f"doc is missing path: {path!r}")
    return parent[parts[-1]]


def _remove(doc, path: str):
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        return parent.pop(_index(parent, parts[-1], path))
    if not isinstance(parent, dict) or parts[-1] not in parent:
        raise bad_patch(f"doc is missing path: {path!r}")
    return parent.pop(parts[-1])


def _add(doc, path: str, value, replace: bool = False):
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        index = _index(parent, parts[-1], path, adding=not replace)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    elif isinstance(parent, dict):
        if replace and parts[-1] not in parent:
            raise bad_patch(f"doc is missing key: {path!r}")
        parent[parts[-1]] = value
    else:
        raise bad_patch(f"doc is missing path: {path!r}")
    return doc


def json_patch(target, operations) -> dict:
    """RFC 6902."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            doc = _add(doc, path, _remove(doc, op["from"]))
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise bad_patch(f"testing value {path} failed")
        else:
            raise bad_patch(f"unexpected kind of operation: {kind!r}")
    return doc


def apply_patch(content_type: str, target: dict, patch) -> dict:
    """Dispatch on the request Content-Type; 415 for anything else (e.g. apply-patch+yaml)."""
    media = (content_type or "").split(";")[0].strip()
    if media == STRATEGIC_PATCH:
        return strategic_merge(target, patch)
    if media == MERGE_PATCH:
        return merge_patch(target, patch)
    if media == JSON_PATCH:
        return json_patch(target, patch)
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_PATCH}",
    )
