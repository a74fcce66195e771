"""Field ownership (`metadata.managedFields`) and server-side apply, after structured-merge-diff.

A field set is a set of paths; each path is a tuple of FieldsV1 path elements: `f:<field>`,
`k:<json of the key fields>` (an item of an associative list), `v:<json value>` (a member of a
set) and `.` (the item or map itself). `to_fields_v1` / `from_fields_v1` convert to and from the
nested `fieldsV1` form the API serves.

Every write records who changed which fields (operation Update); an apply (operation Apply)
declares the fields a manager wants to own. Applying a field another manager owns with a
different value is a conflict, reported like kube-apiserver does, unless the apply is forced,
which takes the field over. Fields a manager applied before and leaves out now are removed
when nobody else owns them.
"""

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from . import schema

Path = tuple[str, ...]
# Metadata the server sets: never owned by anyone.
SERVER_METADATA = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
}
TOP_IGNORED = {"apiVersion", "kind"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- field sets of values
def _key(item: dict, keys: tuple[str, ...]) -> str:
    return "k:" + json.dumps({k: item[k] for k in keys if k in item}, separators=(",", ":"))


def leaves(value, type_expr: str, prefix: Path = ()) -> dict[Path, object]:
    """Every owned path of `value` (of type `type_expr`) mapped to the value found there."""
    found: dict[Path, object] = {}
    _walk(value, type_expr, prefix, found)
    return found


def _walk(value, type_expr: str, prefix: Path, found: dict) -> None:
    info = schema.list_info(type_expr)
    value_type = schema.map_value(type_expr)
    if info is not None and isinstance(value, list) and info.kind != "atomic":
        for item in value:
            if info.kind == "set":
                found[(*prefix, "v:" + json.dumps(item, separators=(",", ":")))] = item
            elif isinstance(item, dict):
                item_path = (*prefix, _key(item, info.keys))
                found[(*item_path, ".")] = None
                _walk_struct(item, info.item, item_path, found)
        return
    if value_type is not None and isinstance(value, dict) and "atomic" not in type_expr:
        if not value:
            found[prefix] = value
            return
        found[(*prefix, ".")] = None
        for key, sub in value.items():
            _walk(sub, value_type, (*prefix, f"f:{key}"), found)
        return
    if schema.is_struct(type_expr) and type_expr not in schema.ATOMIC_TYPES and isinstance(value, dict) and value:
        _walk_struct(value, type_expr, prefix, found)
        return
    found[prefix] = value


def _walk_struct(value: dict, type_name: str, prefix: Path, found: dict) -> None:
    fields = schema.REGISTRY[type_name].fields if schema.is_struct(type_name) else {}
    for key, sub in value.items():
        if not prefix and (key in TOP_IGNORED or key == "status"):
            continue
        if prefix == ("f:metadata",) and key in SERVER_METADATA:
            continue
        spec = fields.get(key)
        type_expr = spec.type + ("@atomic" if spec.strategy == "atomic" else "") if spec else "any"
        _walk(sub, type_expr, (*prefix, f"f:{key}"), found)


def object_leaves(obj: dict, type_name: str, status: bool) -> dict[Path, object]:
    """The owned paths of a whole object: its status only, or everything but its status."""
    if status:
        status_type = schema.REGISTRY[type_name].fields.get("status")
        value = obj.get("status")
        if status_type is None or not isinstance(value, dict) or not value:
            return {}
        return leaves(value, status_type.type, ("f:status",))
    found: dict[Path, object] = {}
    _walk_struct(obj, type_name, (), found)
    return found


# ---------------------------------------------------------------- FieldsV1 <-> paths
def to_fields_v1(paths: set[Path]) -> dict:
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return tree


def from_fields_v1(tree: dict, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for element, sub in (tree or {}).items():
        path = (*prefix, element)
        if isinstance(sub, dict) and sub:
            paths |= from_fields_v1(sub, path)
        else:
            paths.add(path)
    return paths


def describe(path: Path) -> str:
    """structured-merge-diff's path text: `.spec.template.spec.containers[name="app"].image`."""
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if element == ".":
            continue
        if kind == "f":
            text += f".{rest}"
        elif kind == "k":
            keys = json.loads(rest)
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            text += f"[={rest}]"
    return text


# ---------------------------------------------------------------- managed entries
@dataclass
class Entry:
    manager: str
    operation: str  # Apply | Update
    api_version: str
    paths: set
    time: str
    subresource: str = ""

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def as_json(self) -> dict:
        body = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.paths),
        }
        if self.subresource:
            body["subresource"] = self.subresource
        return body

    def label(self) -> str:
        """How a conflict names this manager (apiserver fieldmanager printManager)."""
        name = json.dumps(self.manager)
        if self.subresource:
            name += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            return f"{name} using {self.api_version}"
        return name


def entries_of(obj: dict) -> list[Entry]:
    result = []
    for raw in obj.get("metadata", {}).get("managedFields") or []:
        if not isinstance(raw, dict) or not raw.get("manager"):
            continue
        result.append(
            Entry(
                raw["manager"],
                raw.get("operation", "Update"),
                raw.get("apiVersion", ""),
                from_fields_v1(raw.get("fieldsV1") or {}),
                raw.get("time") or now_iso(),
                raw.get("subresource", ""),
            )
        )
    return result


def store_entries(obj: dict, entries: list[Entry]) -> None:
    kept = [e.as_json() for e in entries if e.paths]
    if kept:
        obj["metadata"]["managedFields"] = kept
    else:
        obj["metadata"].pop("managedFields", None)


def record_update(old: dict | None, new: dict, type_name: str, manager: str, subresource: str = "") -> None:
    """Give `manager` the fields this write changed (operation Update), taking them from others.

    `subresource` "status" records status changes only; "" records everything but the status;
    "all" (controllers writing a whole object) records both, as two entries."""
    if subresource == "all":
        record_update(old, new, type_name, manager, "")
        record_update(old, new, type_name, manager, "status")
        return
    status = subresource == "status"
    before = object_leaves(old, type_name, status) if old else {}
    after = object_leaves(new, type_name, status)
    changed = {p for p, v in after.items() if p not in before or before[p] != v}
    removed = set(before) - set(after)
    if not changed and not removed:
        return
    entries = entries_of(new)
    ident = (manager, "Update", subresource)
    mine = next((e for e in entries if e.ident == ident), None)
    if mine is None:
        mine = Entry(manager, "Update", new.get("apiVersion", ""), set(), now_iso(), subresource)
        entries.append(mine)
    for entry in entries:
        if entry is not mine:
            entry.paths -= changed | removed
    mine.paths = (mine.paths | changed) - removed
    mine.time = now_iso()
    store_entries(new, entries)


# ---------------------------------------------------------------- server-side apply
class ApplyConflict(Exception):
    """Fields the applier does not own hold other values; `conflicts` is [(Entry, path)]."""

    def __init__(self, conflicts: list[tuple[Entry, Path]]):
        self.conflicts = conflicts
        super().__init__(self.message())

    def message(self) -> str:
        if len(self.conflicts) == 1:
            entry, path = self.conflicts[0]
            return f"Apply failed with 1 conflict: conflict with {entry.label()}: {describe(path)}"
        by_manager: dict[str, list[str]] = {}
        for entry, path in self.conflicts:
            by_manager.setdefault(entry.label(), []).append(describe(path))
        lines = []
        for label in sorted(by_manager):
            lines.append(f"conflicts with {label}:")
            lines += [f"- {p}" for p in by_manager[label]]
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict]:
        return [
            {"reason": "FieldManagerConflict", "message": f"conflict with {e.label()}", "field": describe(p)}
            for e, p in self.conflicts
        ]


def apply(live: dict, config: dict, type_name: str, manager: str, force: bool) -> dict:
    """The object after `manager` applies `config` to `live` (neither is modified)."""
    applied = object_leaves(config, type_name, status=False)
    entries = entries_of(live)
    ident = (manager, "Apply", "")
    mine = next((e for e in entries if e.ident == ident), None)
    previous = set(mine.paths) if mine else set()
    current = object_leaves(live, type_name, status=False)
    conflicts = []
    for entry in entries:
        if entry is mine or entry.subresource:
            continue
        for path in sorted(entry.paths & set(applied)):
            if path[-1] != "." and path in current and current[path] != applied[path]:
                conflicts.append((entry, path))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    for entry, path in conflicts:
        entry.paths.discard(path)
    result = merge(copy.deepcopy(live), config, type_name)
    others = set().union(*(e.paths for e in entries if e is not mine))
    for path in sorted(previous - set(applied) - others, key=len, reverse=True):
        remove(result, path)
    if mine is None:
        mine = Entry(manager, "Apply", config.get("apiVersion", live.get("apiVersion", "")), set(), now_iso())
        entries.append(mine)
    if mine.paths != set(applied):
        mine.paths = set(applied)
        mine.time = now_iso()
    store_entries(result, entries)
    return result


def merge(live, config, type_expr: str):
    """Merge an applied configuration into the live value: maps and structs field by field,
    associative lists item by item, sets as a union; anything else is replaced."""
    if isinstance(config, dict) and isinstance(live, dict):
        return _merge_map(live, config, type_expr)
    info = schema.list_info(type_expr)
    if info is not None and isinstance(config, list) and isinstance(live, list) and info.kind != "atomic":
        return _merge_list(live, config, info)
    return copy.deepcopy(config)


def _merge_map(live: dict, config: dict, type_expr: str):
    if schema.is_struct(type_expr) and type_expr not in schema.ATOMIC_TYPES:
        fields = schema.REGISTRY[type_expr].fields
        for key, value in config.items():
            spec = fields.get(key)
            sub = (spec.type + ("@atomic" if spec.strategy == "atomic" else "")) if spec else "any"
            live[key] = merge(live.get(key), value, sub)
        return live
    value_type = schema.map_value(type_expr)
    if value_type is None:
        return copy.deepcopy(config)
    for key, value in config.items():
        live[key] = merge(live.get(key), value, value_type)
    return live


def _merge_list(live: list, config: list, info: schema.ListInfo) -> list:
    if info.kind == "set":
        return live + [v for v in config if v not in live]
    for item in config:
        if not isinstance(item, dict):
            continue
        index = _find(live, item, info.keys)
        if index is None:
            live.append(copy.deepcopy(item))
        else:
            live[index] = merge(live[index], item, info.item)
    return live


def _find(items: list, item: dict, keys: tuple[str, ...]) -> int | None:
    wanted = {k: item.get(k) for k in keys if k in item}
    for index, candidate in enumerate(items):
        if isinstance(candidate, dict) and all(candidate.get(k) == v for k, v in wanted.items()):
            return index
    return None


def remove(obj, path: Path) -> None:
    """Remove the field, set member or list item a path names (quietly if it is gone)."""
    if not path:
        return
    parent_path, last = path[:-1], path[-1]
    if last == ".":
        if parent_path and parent_path[-1].startswith("k:"):
            container = _resolve(obj, parent_path[:-1])
            if isinstance(container, list):
                keys = json.loads(parent_path[-1][2:])
                container[:] = [i for i in container if not all(i.get(k) == v for k, v in keys.items())]
            return
        if parent_path:
            remove(obj, parent_path)
        return
    container = _resolve(obj, parent_path)
    if last.startswith("f:") and isinstance(container, dict):
        container.pop(last[2:], None)
    elif last.startswith("v:") and isinstance(container, list):
        value = json.loads(last[2:])
        container[:] = [v for v in container if v != value]


def _resolve(obj, path: Path):
    node = obj
    for element in path:
        if element.startswith("f:") and isinstance(node, dict):
            node = node.get(element[2:])
        elif element.startswith("k:") and isinstance(node, list):
            keys = json.loads(element[2:])
            node = next((i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items())), None)
        else:
            return None
    return node
