"""A Grafana stand-in: the annotations API and embeddable solo panel pages.

Tests call `start(token=...)`, post to `{handle.url}/api/annotations` with
`Authorization: Bearer <token>`, and assert on `handle.annotations`; `handle.panel_url()`
builds a `/d-solo/` embed URL.
"""

from urllib.parse import urlencode

from sandbox.faults import Faults, SandboxHandle
from sandbox.grafana.annotations import Annotations
from sandbox.grafana.server import GrafanaHandler
from sandbox.http import serve


class GrafanaSandbox(SandboxHandle):
    def __init__(self, running, faults: Faults, store: Annotations):
        super().__init__(running, faults)
        self.store = store

    @property
    def annotations(self) -> list[dict]:
        """Annotations oldest first, as `GET /api/annotations` returns each item."""
        with self.store.lock:
            return [dict(a) for a in self.store.items]

    def panel_url(self, uid: str = "pampam", panel_id: int = 1, params: dict | None = None) -> str:
        """A `/d-solo/` URL like Grafana's Share → Embed builds (see PROTOCOLS.md §4)."""
        query = urlencode({"orgId": 1, "panelId": panel_id, **(params or {})}, doseq=True)
        return f"{self.url}/d-solo/{uid}/{uid}?{query}"


def start(port: int = 0, token: str | None = None, host: str = "127.0.0.1") -> GrafanaSandbox:
    store = Annotations()
    faults = Faults()
    running = serve(GrafanaHandler, port, host, annotations=store, faults=faults, token=token)
    return GrafanaSandbox(running, faults, store)
