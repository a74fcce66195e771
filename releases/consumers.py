"""Websocket consumers. They only relay: authenticate, join a group, forward events.

Gapless replay: the consumer joins the deployment's group *before* reading the backlog
from the database, then drops any live event it has already sent (seq ≤ last sent). A
browser that reconnects with `?after=<last seq it saw>` therefore misses nothing and sees
nothing twice.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from portal.live import ACTIVITY_GROUP
from releases.models import Deployment, DeploymentEvent

# Close codes (4000–4999 are for applications).
UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
BAD_REQUEST = 4400
BACKLOG_LIMIT = 5000


class DeploymentConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.last_seq = 0
        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        after = _after_param(self.scope)
        if after is None:
            await self.close(code=BAD_REQUEST)
            return
        self.pk = self.scope["url_route"]["kwargs"]["pk"]
        if not await database_sync_to_async(Deployment.objects.filter(pk=self.pk).exists)():
            await self.close(code=NOT_FOUND)
            return
        self.group = f"deployment-{self.pk}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.last_seq = after
        for message in await self._backlog(after):
            await self._forward(message)
        await self.send_json({"type": "ready", "seq": self.last_seq})

    @database_sync_to_async
    def _backlog(self, after: int) -> list[dict]:
        events = (
            DeploymentEvent.objects.filter(deployment_id=self.pk, seq__gt=after)
            .select_related("actor")
            .order_by("seq")[:BACKLOG_LIMIT]
        )
        return [event.as_message() for event in events]

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The page only listens; a ping keeps proxies from closing an idle socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "seq": self.last_seq})
            return
        await self.close(code=BAD_REQUEST)

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def deployment_event(self, message):
        await self._forward(message["event"])

    async def _forward(self, event: dict) -> None:
        if event["seq"] <= self.last_seq:
            return
        self.last_seq = event["seq"]
        await self.send_json(event)


class ActivityConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        await self.channel_layer.group_add(ACTIVITY_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(ACTIVITY_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
            return
        await self.close(code=BAD_REQUEST)

    async def decode_json(self, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def activity_update(self, message):
        await self.send_json({"type": "update", **message["update"]})


def _after_param(scope) -> int | None:
    """The `after` query parameter as a non-negative int; 0 when absent, None when malformed."""
    try:
        values = parse_qs(scope.get("query_string", b"").decode("ascii"), strict_parsing=False)
    except UnicodeDecodeError:
        return None
    raw = values.get("after", ["0"])[-1]
    if not raw.isdigit() or len(raw) > 12:
        return None
    return int(raw)
