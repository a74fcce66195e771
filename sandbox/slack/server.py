"""The Slack sandbox's HTTP handler: incoming webhooks, a bot's Web API and interactivity
(see workspace.py), plus a page listing what arrived where a person can click the buttons.

Answers exactly like hooks.slack.com: `200 ok` as a plain body, `400 invalid_payload` when the
body is not a JSON object (or a form with `payload=`), `400 no_text` when there is nothing to
show, `404 no_service` for an unknown hook; injected faults answer `500 internal_error` or
`429 rate_limited` with `Retry-After`.
"""

import hmac
import itertools
import json
import re
import threading
from datetime import UTC, datetime
from html import escape
from urllib.parse import parse_qs, urlencode

from sandbox.faults import FaultingHandler, route_table

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
    faultable = re.compile(r"^/(?:services/|api/(?:chat|users)\.)")
    routes = route_table(
        {
            "POST (?P<hook>/services/[^/]+/[^/]+/[^/]+)": "receive",
            "GET /api/messages": "list_messages",
            "DELETE /api/messages": "clear_messages",
            r"POST /api/chat\.postMessage": "chat_post_message",
            r"POST /api/chat\.update": "chat_update",
            r"GET /api/users\.info": "users_info",
            r"POST /api/users\.info": "users_info",
            "GET /api/channel": "list_channel",
            "GET /api/answers": "list_answers",
            "POST /actions/(?P<team>[^/]+)/(?P<action>[0-9]+)": "receive_answer",
            "POST /sandbox/click": "click",
            "POST /click": "click_from_page",
            "GET /(?:messages)?": "show_messages",
        }
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

    # -- Web API: answers like slack.com/api (HTTP 200 with "ok": false for a refusal) --------
    def api_arguments(self) -> dict:
        body = self.read_body()
        content_type = self.headers.get("Content-Type", "")
        arguments = {k: v[0] for k, v in self.query.items()}
        try:
            if content_type.startswith("application/json") and body.strip():
                arguments.update(json.loads(body))
            elif body.strip():
                arguments.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
        except (ValueError, UnicodeDecodeError, TypeError):
            return {"_invalid": True}
        return arguments

    def bot_refusal(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return "not_authed"
        return None if hmac.compare_digest(auth[7:], self.server.workspace.token) else "invalid_auth"

    def api_reply(self, payload: dict) -> None:
        self.send_json(200, payload)

    def api_call(self, action) -> None:
        refusal = self.bot_refusal()
        arguments = self.api_arguments()
        if refusal or arguments.get("_invalid"):
            self.api_reply({"ok": False, "error": refusal or "invalid_json"})
            return
        self.api_reply(action(arguments))

    def chat_post_message(self):
        def post(arguments):
            if not arguments.get("channel"):
                return {"ok": False, "error": "channel_not_found"}
            if not arguments.get("text") and not arguments.get("blocks"):
                return {"ok": False, "error": "no_text"}
            posted = self.server.workspace.post(arguments["channel"], arguments.get("text", ""), _blocks(arguments))
            message = {"type": "message", "text": posted.text, "blocks": posted.blocks, "ts": posted.ts}
            return {"ok": True, "channel": posted.channel, "ts": posted.ts, "message": message}

        self.api_call(post)

    def chat_update(self):
        def update(arguments):
            workspace = self.server.workspace
            posted = workspace.update(
                arguments.get("channel", ""), arguments.get("ts", ""), arguments.get("text", ""), _blocks(arguments)
            )
            if posted is None:
                return {"ok": False, "error": "message_not_found"}
            return {"ok": True, "channel": posted.channel, "ts": posted.ts, "text": posted.text}

        self.api_call(update)

    def users_info(self):
        def info(arguments):
            member = self.server.workspace.member(arguments.get("user", ""))
            if member is None:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": _user(member)}

        self.api_call(info)

    def list_channel(self):
        self.send_json(200, self.server.workspace.messages())

    def list_answers(self):
        self.send_json(200, self.server.workspace.answers())

    def receive_answer(self, team, action):
        payload = parse_payload(self.read_body(), self.headers.get("Content-Type", ""))
        if payload is None:
            self.send_text(400, "invalid_payload")
            return
        self.server.workspace.answer(action, payload)
        self.send_text(200, "ok")

    def click(self):
        """`{"ts", "action_id", "user", "skew_seconds"?, "secret"?}` → the app's answer."""
        try:
            spec = self.read_json() or {}
            status, body = self.server.workspace.click(
                str(spec["ts"]),
                str(spec["action_id"]),
                str(spec["user"]),
                skew_seconds=int(spec.get("skew_seconds", 0)),
                secret=spec.get("secret"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.send_json(400, {"message": f"bad click: {exc}"})
            return
        self.send_json(200, {"status": status, "body": body})

    def click_from_page(self):
        form = {k: v[0] for k, v in parse_qs(self.read_body().decode("utf-8", "replace")).items()}
        try:
            status, body = self.server.workspace.click(form["ts"], form["action_id"], form["user"])
            note = f"The app answered {status} {body[:200]}".strip()
        except KeyError as exc:
            note = f"Not clicked: {exc}"
        self.send_bytes(303, b"", "text/plain", {"Location": "/?" + urlencode({"refresh": "0", "note": note})})

    def list_messages(self):
        self.send_json(200, self.server.inbox.records())

    def clear_messages(self):
        self.server.inbox.clear()
        self.send_json(200, [])

    def show_messages(self):
        refresh = self.query_one("refresh", "5") != "0"
        page = render_page(self.server.inbox.records(), self.server.workspace, self.query_one("note", ""), refresh)
        self.send_bytes(200, page.encode(), "text/html; charset=utf-8")


def _blocks(arguments: dict) -> list:
    blocks = arguments.get("blocks") or []
    if isinstance(blocks, str):  # form-encoded calls send blocks as a JSON string
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return []
    return blocks if isinstance(blocks, list) else []


def _user(member: dict) -> dict:
    """A users.info `user` object (the fields apps read)."""
    return {
        "id": member["id"],
        "team_id": "T0SANDBOX",
        "name": member["name"],
        "real_name": member["name"].title(),
        "deleted": bool(member.get("deleted")),
        "is_bot": bool(member.get("is_bot")),
        "is_email_confirmed": bool(member.get("email_confirmed")),
        "profile": {"email": member.get("email", ""), "real_name": member["name"].title()},
    }


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


def render_posted(message: dict, members: dict) -> str:
    """A bot message as the channel shows it, with its buttons as forms clicking as a chosen member."""
    lines = "<br>".join(escape(line).replace("\n", "<br>") for line in block_texts(message["blocks"]) if line)
    forms = ""
    options = "".join(f'<option value="{escape(m)}">{escape(v["name"])}</option>' for m, v in members.items())
    for block in message["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            forms += (
                f'<form method="post" action="/click" class="click">'
                f'<input type="hidden" name="ts" value="{escape(message["ts"])}">'
                f'<input type="hidden" name="action_id" value="{escape(element.get("action_id", ""))}">'
                f'<select name="user" aria-label="as">{options}</select> '
                f'<button type="submit" class="{escape(element.get("style", ""))}">'
                f"{escape(element.get('text', {}).get('text', ''))}</button></form>"
            )
    updated = f" · updated {len(message['updates'])}×" if message["updates"] else ""
    return (
        f'<article class="bot" data-ts="{escape(message["ts"])}"><header>{escape(message["channel"])} · '
        f"{escape(message['ts'])}{updated}</header><p>{lines}</p>{forms}</article>"
    )


def render_page(records: list[dict], workspace=None, note: str = "", refresh: bool = True) -> str:
    """The page; `refresh` reloads it every 5 s (`?refresh=0` keeps still while someone picks a member)."""
    items = "".join(render_message(r) for r in reversed(records)) or "<p>No messages yet.</p>"
    posted = list(reversed(workspace.messages())) if workspace else []
    bot = "".join(render_posted(m, workspace.members) for m in posted) or "<p>No approval requests yet.</p>"
    answers = "".join(f"<li>{escape(a.get('text', ''))}</li>" for a in (workspace.answers() if workspace else []))
    banner = f'<p class="note">{escape(note)}</p>' if note else ""
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Slack sandbox</title>"
        + ('<meta http-equiv="refresh" content="5">' if refresh else "")
        + "<style>body{font:14px sans-serif;margin:2em;max-width:50em}"
        "article{border-left:4px solid #4a154b;padding:.3em 1em;margin:1em 0}"
        "header{color:#666;font-size:12px}pre{white-space:pre-wrap}form.click{display:inline-block;margin:.2em}"
        "button.primary{background:#007a5a;color:#fff}button.danger{background:#e01e5a;color:#fff}"
        ".note{background:#fff8e1;padding:.5em}</style></head>"
        f"<body><h1>Slack sandbox</h1>{banner}<h2>#deploys (the app's messages)</h2>{bot}"
        f"<h2>Only visible to the clicker</h2><ul>{answers or '<li>none</li>'}</ul>"
        f"<h2>Incoming webhooks</h2>{items}</body></html>"
    )
