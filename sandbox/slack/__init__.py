"""A Slack incoming-webhook stand-in that captures what Pampam posts.

    handle = start()
    WebhookClient(handle.webhook_url).send(text="Deployed web 1.4.2")
    handle.messages[-1]["text"]

`GET /` shows the captured messages as a page for the demo, `GET /api/messages` as JSON.
"""

from sandbox.faults import Faults, SandboxHandle
from sandbox.http import serve
from sandbox.slack.server import DEFAULT_HOOK, Inbox, SlackHandler


class SlackSandbox(SandboxHandle):
    def __init__(self, running, faults: Faults, inbox: Inbox):
        super().__init__(running, faults)
        self.inbox = inbox

    @property
    def webhook_url(self) -> str:
        return self.url + DEFAULT_HOOK

    def hook_url(self, path: str) -> str:
        return self.url + path

    @property
    def messages(self) -> list[dict]:
        """The posted payloads (text, blocks, attachments, …), oldest first."""
        return [record["payload"] for record in self.inbox.records()]

    @property
    def deliveries(self) -> list[dict]:
        """Each message with its hook path and arrival time: {id, hook, received_at, payload}."""
        return self.inbox.records()

    def clear(self) -> None:
        self.inbox.clear()


def start(port: int = 0, hooks: list[str] | None = None, host: str = "127.0.0.1") -> SlackSandbox:
    """`hooks`: accept only these `/services/…` paths (others get 404 `no_service`)."""
    inbox = Inbox()
    faults = Faults()
    allowed = frozenset(hooks) if hooks else None
    running = serve(SlackHandler, port, host, inbox=inbox, faults=faults, hooks=allowed)
    return SlackSandbox(running, faults, inbox)
