"""Grafana's annotations, kept in memory (docs/sources/developers/http_api/annotations.md).

Times are epoch milliseconds. A point annotation has `timeEnd == time`; a region has a later
`timeEnd`. Annotations without a dashboard are organisation annotations, found by tags.
"""

import itertools
import threading
import time


class BadRequest(ValueError):
    """The body does not describe an annotation (Grafana answers 400)."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Annotations:
    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[dict] = []
        self._ids = itertools.count(1)

    def add(self, body) -> int:
        fields = _validated(body, creating=True)
        stamp = now_ms()
        start = fields.get("time") or stamp
        item = {
            "id": next(self._ids),
            "alertId": 0,
            "alertName": "",
            "dashboardId": fields.get("dashboardId", 0),
            "dashboardUID": fields.get("dashboardUID", ""),
            "panelId": fields.get("panelId", 0),
            "userId": 1,
            "login": "pampam",
            "email": "pampam@example.com",
            "avatarUrl": "/avatar/pampam",
            "newState": "",
            "prevState": "",
            "created": stamp,
            "updated": stamp,
            "time": start,
            "timeEnd": fields.get("timeEnd") or start,
            "text": fields["text"],
            "tags": fields.get("tags", []),
            "data": fields.get("data", {}),
        }
        with self.lock:
            self.items.append(item)
        return item["id"]

    def get(self, annotation_id: int) -> dict | None:
        with self.lock:
            return next((a for a in self.items if a["id"] == annotation_id), None)

    def patch(self, annotation_id: int, body) -> bool:
        fields = _validated(body, creating=False)
        with self.lock:
            item = next((a for a in self.items if a["id"] == annotation_id), None)
            if item is None:
                return False
            item.update(fields, updated=now_ms())
            if item["timeEnd"] < item["time"]:
                item["timeEnd"] = item["time"]
            return True

    def delete(self, annotation_id: int) -> bool:
        with self.lock:
            before = len(self.items)
            self.items = [a for a in self.items if a["id"] != annotation_id]
            return len(self.items) < before

    def find(self, query: dict[str, list[str]]) -> list[dict]:
        """`GET /api/annotations`: overlap with [from, to], all tags (or any with matchAny),
        dashboard and panel filters, newest first, at most `limit` (default 100)."""
        one = {key: values[0] for key, values in query.items() if values and values[0] != ""}
        tags = [t for t in query.get("tags", []) if t]
        match = any if one.get("matchAny") == "true" else all
        with self.lock:
            found = [
                a
                for a in self.items
                if _int(one.get("to"), a["time"]) >= a["time"]
                and _int(one.get("from"), a["timeEnd"]) <= a["timeEnd"]
                and (not tags or match(t in a["tags"] for t in tags))
                and one.get("dashboardUID", a["dashboardUID"]) == a["dashboardUID"]
                and _int(one.get("dashboardId"), a["dashboardId"]) == a["dashboardId"]
                and _int(one.get("panelId"), a["panelId"]) == a["panelId"]
                and one.get("type") != "alert"
            ]
        found.sort(key=lambda a: a["time"], reverse=True)
        return found[: _int(one.get("limit"), 100)]


# Field name -> accepted JSON types. Grafana binds these from the JSON body.
FIELDS = {
    "dashboardUID": (str,),
    "dashboardId": (int,),
    "panelId": (int,),
    "time": (int,),
    "timeEnd": (int,),
    "text": (str,),
    "tags": (list,),
    "data": (dict,),
}


def _validated(body, creating: bool) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("bad request data")
    fields = {}
    for name, value in body.items():
        if name not in FIELDS or value is None:
            continue  # Grafana ignores unknown fields
        if isinstance(value, bool) or not isinstance(value, FIELDS[name]):
            raise BadRequest(f"bad request data: {name}")
        fields[name] = value
    if not all(isinstance(t, str) for t in fields.get("tags", [])):
        raise BadRequest("bad request data: tags")
    if creating and not fields.get("text"):
        raise BadRequest("bad request data: text is required")
    return fields


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
