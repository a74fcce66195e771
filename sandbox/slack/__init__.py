"""A Slack stand-in: incoming webhooks, a bot's Web API and the app's interactivity.

    handle = start(interactivity_url="http://portal/hooks/slack/")
    WebhookClient(handle.webhook_url).send(text="Deployed web 1.4.2")
    handle.messages[-1]["text"]
    WebClient(token=handle.bot_token, base_url=handle.api_url).chat_postMessage(channel="deploys", …)
    handle.click(ts, "approve", "U0BOB")  # a signed block_actions payload to the interactivity URL

`GET /` shows the captured messages as a page for the demo, with the bot's buttons to click as a
chosen member; `GET /api/messages` lists the webhook posts, `/api/channel` the bot's messages
(with every chat.update), `/api/answers` the private answers sent to `response_url`s.
"""

from sandbox.faults import Faults, SandboxHandle
from sandbox.http import forwarded, serve
from sandbox.slack.server import DEFAULT_HOOK, Inbox, SlackHandler
from sandbox.slack.workspace import DEFAULT_MEMBERS, DEFAULT_SECRET, DEFAULT_TOKEN, TEAM_ID, Workspace

__all__ = ["TEAM_ID", "SlackSandbox", "start"]


class SlackSandbox(SandboxHandle):
    bot_token = forwarded("workspace.token")
    signing_secret = forwarded("workspace.signing_secret")

    def __init__(self, running, faults: Faults, inbox: Inbox, workspace: Workspace):
        super().__init__(running, faults)
        self.inbox = inbox
        self.workspace = workspace

    @property
    def api_url(self) -> str:
        """The Web API base (what slack.com/api/ is), for SLACK_API_URL."""
        return self.url + "/api/"

    def set_interactivity_url(self, url: str) -> None:
        self.workspace.interactivity_url = url

    @property
    def channel(self) -> list[dict]:
        """The bot's messages as they are now, each with its `updates`, oldest first."""
        return self.workspace.messages()

    @property
    def answers(self) -> list[dict]:
        """Private answers (ephemeral messages) sent to the `response_url`s of clicks."""
        return self.workspace.answers()

    def click(self, ts: str, action_id: str, user_id: str, **options) -> tuple[int, str]:
        """Click a button of the bot's message `ts` as member `user_id`: the app's (status, body)."""
        return self.workspace.click(ts, action_id, user_id, **options)

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


def start(
    port: int = 0,
    hooks: list[str] | None = None,
    host: str = "127.0.0.1",
    *,
    interactivity_url: str = "",
    bot_token: str = DEFAULT_TOKEN,
    signing_secret: str = DEFAULT_SECRET,
    members=DEFAULT_MEMBERS,
) -> SlackSandbox:
    """`hooks`: accept only these `/services/…` paths (others get 404 `no_service`).

    `members`: the workspace's people, `{"id", "name", "email", "email_confirmed"?, "deleted"?}`.
    """
    inbox = Inbox()
    faults = Faults()
    workspace = Workspace(bot_token, signing_secret, interactivity_url, members)
    allowed = frozenset(hooks) if hooks else None
    running = serve(SlackHandler, port, host, inbox=inbox, faults=faults, hooks=allowed, workspace=workspace)
    workspace.root_url = running.url if host in ("127.0.0.1", "0.0.0.0") else f"http://{host}:{running.port}"
    return SlackSandbox(running, faults, inbox, workspace)
