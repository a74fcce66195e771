"""The Slack sandbox's HTTP handler: incoming webhooks plus a page listing what arrived.

Answers exactly like hooks.slack.com: `200 ok` as a plain body, `400 invalid_payload` when the
body is not a JSON object (or a form with `payload=`), `400 no_text` when there is nothing to
show, `404 no_service` for an unknown hook; injected faults answer `500 internal_error` or
`429 rate_limited` with `Retry-After`.
"""

import itertools
import json
import re
import threading
from datetime import UTC, datetime
from html import escape
from urllib.parse import parse_qs

from sandbox.faults import FaultingHandler, route

DEFAULT_HOOK = "/services/T000/B000/XXXX"


class Inbox:
    """Captured webhook posts, oldest first."""

    def __init__(self):
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._ids = itertools.count(1)

    def add(self, hook: str, payload: dict) -> None:
        record = {
            "id": next(self._ids),
            "hook": hook,
            "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "payload": payload,
        }
        with self._lock:
            self._records.append(record)

    def records(self) -> list[dict]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class SlackHandler(FaultingHandler):
    faultable = re.compile(r"^/services/")
    routes = (
        route("POST", r"(?P<hook>/services/[^/]+/[^/]+/[^/]+)", "receive"),
        route("GET", r"/api/messages", "list_messages"),
        route("DELETE", r"/api/messages", "clear_messages"),
        route("GET", r"/(?:messages)?", "show_messages"),
    )

    def send_text(self, status: int, text: str, headers: dict | None = None) -> None:
        self.send_bytes(status, text.encode(), "text/plain; charset=utf-8", headers)

    def send_not_found(self) -> None:
        self.send_text(404, "no_service")

    def send_fault(self, fault) -> None:
        if fault.status == 429:
            # Slack always says when to come back.
            self.send_text(429, "rate_limited", {"Retry-After": str(fault.retry_after or 1)})
            return
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        self.send_text(fault.status, "internal_error", headers)

    def receive(self, hook):
        body = self.read_body()
        if self.server.hooks is not None and hook not in self.server.hooks:
            self.send_text(404, "no_service")
            return
        payload = parse_payload(body, self.headers.get("Content-Type", ""))
        if payload is None:
            self.send_text(400, "invalid_payload")
            return
        if not any(payload.get(key) for key in ("text", "blocks", "attachments")):
            self.send_text(400, "no_text")
            return
        self.server.inbox.add(hook, payload)
        self.send_text(200, "ok")

    def list_messages(self):
        self.send_json(200, self.server.inbox.records())

    def clear_messages(self):
        self.server.inbox.clear()
        self.send_json(200, [])

    def show_messages(self):
        page = render_page(self.server.inbox.records())
        self.send_bytes(200, page.encode(), "text/html; charset=utf-8")


def parse_payload(body: bytes, content_type: str) -> dict | None:
    """A JSON object body, or a form whose `payload` field holds one; None when invalid.

    Like Slack, a JSON body sent with a form content type (`curl -d '{...}'`) is accepted too.
    """
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode())
            body = form["payload"][0].encode() if "payload" in form else body
        payload = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def block_texts(blocks: list) -> list[str]:
    """The visible text of Block Kit blocks (section, header, context, fields), flattened."""
    texts = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        parts = [block.get("text")] + block.get("fields", []) + block.get("elements", [])
        texts += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return texts


def render_message(record: dict) -> str:
    payload = record["payload"]
    lines = [payload.get("text") or ""] + block_texts(payload.get("blocks"))
    for attachment in payload.get("attachments") or []:
        if isinstance(attachment, dict):
            lines += [attachment.get("text") or attachment.get("fallback") or ""]
            lines += block_texts(attachment.get("blocks"))
    body = "<br>".join(escape(line).replace("\n", "<br>") for line in lines if line)
    raw = escape(json.dumps(payload, indent=2))
    return (
        f"<article><header>#{record['id']} · {escape(record['hook'])} · "
        f"{escape(record['received_at'])}</header><p>{body}</p>"
        f"<details><summary>payload</summary><pre>{raw}</pre></details></article>"
    )


def render_page(records: list[dict]) -> str:
    items = "".join(render_message(r) for r in reversed(records)) or "<p>No messages yet.</p>"
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Slack sandbox</title>"
        '<meta http-equiv="refresh" content="5">'
        "<style>body{font:14px sans-serif;margin:2em;max-width:50em}"
        "article{border-left:4px solid #4a154b;padding:.3em 1em;margin:1em 0}"
        "header{color:#666;font-size:12px}pre{white-space:pre-wrap}</style></head>"
        f"<body><h1>Slack sandbox</h1>{items}</body></html>"
    )
