"""The Slack sandbox's workspace: a bot's Web API (chat.postMessage, chat.update, users.info),
members, and the app's interactivity: clicking a button as a chosen member sends a signed
`block_actions` payload to the app's interactivity URL, as Slack does.

Signing (docs.slack.dev "Verifying requests from Slack"): `X-Slack-Request-Timestamp: <unix
seconds>`, `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<ts>:<raw body>")>`; the
body is `payload=<url-encoded JSON>` (application/x-www-form-urlencoded). The private answer to a
click goes to the payload's `response_url`, which points back at this sandbox (`/actions/<n>`).
"""

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

import requests

TEAM_ID = "T0SANDBOX"
DEFAULT_TOKEN = "xoxb-sandbox-token"
DEFAULT_SECRET = "pampam-demo"
DEFAULT_MEMBERS = (
    {"id": "U0ALICE", "name": "alice", "email": "alice@pampam.local"},
    {"id": "U0BOB", "name": "bob", "email": "bob@pampam.local"},
    {"id": "U0CAROL", "name": "carol", "email": "carol@pampam.local"},
    {"id": "U0DANA", "name": "dana", "email": "dana@elsewhere.example"},
)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_interaction(secret: str, payload: dict, skew_seconds: int = 0) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of an interaction request as Slack sends it, `skew_seconds` off in time."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time()) + skew_seconds)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign(secret, timestamp, body),
    }
    return body, headers


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list
    updates: list = field(default_factory=list)  # each chat.update's {text, blocks}, oldest first


class Workspace:
    """Members, the bot's messages, private answers, and the app's settings; thread-safe."""

    def __init__(self, token: str, signing_secret: str, interactivity_url: str = "", members=DEFAULT_MEMBERS):
        self.token = token
        self.signing_secret = signing_secret
        self.interactivity_url = interactivity_url
        self.members = {m["id"]: {"email_confirmed": True, "deleted": False, **m} for m in members}
        self._lock = threading.Lock()
        self._posted: dict[str, Posted] = {}
        self._answers: list[dict] = []
        self._ts = itertools.count(100)
        self._actions = itertools.count(1)
        self.root_url = ""

    # -- Web API ------------------------------------------------------------------------------
    def post(self, channel: str, text: str, blocks: list) -> Posted:
        with self._lock:
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            posted = Posted(_channel_id(channel), ts, text, blocks)
            self._posted[ts] = posted
            return posted

    def update(self, channel: str, ts: str, text: str, blocks: list) -> Posted | None:
        with self._lock:
            posted = self._posted.get(ts)
            if posted is None or posted.channel != channel:
                return None
            posted.text, posted.blocks = text, blocks
            posted.updates.append({"text": text, "blocks": blocks})
            return posted

    def member(self, user_id: str) -> dict | None:
        return self.members.get(user_id)

    def messages(self) -> list[dict]:
        with self._lock:
            return [asdict(p) for p in self._posted.values()]

    def message(self, ts: str) -> dict | None:
        with self._lock:
            posted = self._posted.get(ts)
            return asdict(posted) if posted else None

    # -- private answers -------------------------------------------------------------------
    def answer(self, action: str, body: dict) -> None:
        with self._lock:
            self._answers.append({"action": action, **body})

    def answers(self) -> list[dict]:
        with self._lock:
            return list(self._answers)

    # -- clicking ----------------------------------------------------------------------------
    def click(self, ts: str, action_id: str, user_id: str, *, skew_seconds: int = 0, secret: str | None = None):
        """Click button `action_id` of message `ts` as member `user_id`; send the signed payload to
        the interactivity URL. Returns (status, body text) of the app's answer."""
        payload = self.payload(ts, action_id, user_id)
        body, headers = signed_interaction(secret or self.signing_secret, payload, skew_seconds)
        if not self.interactivity_url:
            return 0, "No interactivity URL is set (--interactivity-url)."
        try:
            response = requests.post(self.interactivity_url, data=body, headers=headers, timeout=10)
        except requests.RequestException as exc:
            return 0, f"The app cannot be reached: {type(exc).__name__}"
        return response.status_code, response.text

    def payload(self, ts: str, action_id: str, user_id: str) -> dict:
        message = self.message(ts)
        if message is None:
            raise KeyError(f"no message {ts}")
        button = _button(message["blocks"], action_id)
        if button is None:
            raise KeyError(f"message {ts} has no {action_id!r} button now")
        member = self.members.get(user_id) or {"id": user_id, "name": user_id}
        return {
            "type": "block_actions",
            "user": {"id": member["id"], "username": member["name"], "name": member["name"], "team_id": TEAM_ID},
            "api_app_id": "A0SANDBOX",
            "token": "deprecated-verification-token",
            "container": {"type": "message", "message_ts": ts, "channel_id": message["channel"], "is_ephemeral": False},
            "trigger_id": f"{next(self._actions)}.sandbox",
            "team": {"id": TEAM_ID, "domain": "pampam-sandbox"},
            "channel": {"id": message["channel"], "name": message["channel"].lower()},
            "message": {"type": "message", "ts": ts, "text": message["text"], "blocks": message["blocks"]},
            "response_url": f"{self.root_url}/actions/{TEAM_ID}/{next(self._actions)}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": button["block_id"],
                    "text": button.get("text"),
                    "value": button.get("value"),
                    "style": button.get("style"),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }


def _channel_id(channel: str) -> str:
    name = channel.lstrip("#")
    return name if name[:1] in ("C", "G") and name.isupper() else "C0" + "".join(c for c in name.upper() if c.isalnum())


def _button(blocks, action_id: str) -> dict | None:
    for block in blocks or []:
        if isinstance(block, dict) and block.get("type") == "actions":
            for element in block.get("elements") or []:
                if isinstance(element, dict) and element.get("action_id") == action_id:
                    return {**element, "block_id": block.get("block_id", "")}
    return None
