"""The Grafana sandbox's HTTP handler: annotations API and solo panel pages (PROTOCOLS.md §4).

The API needs `Authorization: Bearer <token>` when the sandbox has a token; panel pages are
served as with `[auth.anonymous] enabled = true` and `allow_embedding = true`, so they carry
no `X-Frame-Options` header and can be framed by Pampam.
"""

import re

from sandbox.faults import FaultingHandler, route_table
from sandbox.grafana import panel
from sandbox.grafana.annotations import Annotations, BadRequest, now_ms

SIX_HOURS_MS = 6 * 3_600_000
ANNOTATIONS = "/api/annotations"
ANNOTATION = ANNOTATIONS + r"/(?P<id>\d+)"


class GrafanaHandler(FaultingHandler):
    faultable = re.compile(r"^/api/")
    routes = route_table(
        {
            "GET /api/health": "health",
            f"POST {ANNOTATIONS}": "add_annotation",
            f"GET {ANNOTATIONS}": "find_annotations",
            f"GET {ANNOTATION}": "get_annotation",
            f"PATCH {ANNOTATION}": "patch_annotation",
            f"PUT {ANNOTATION}": "patch_annotation",
            f"DELETE {ANNOTATION}": "delete_annotation",
            "GET /d-solo/(?P<uid>[^/]+)(?:/(?P<slug>[^/]*))?": "solo_panel",
        }
    )

    @property
    def annotations(self) -> Annotations:
        return self.server.annotations

    def authorized(self) -> bool:
        if not self.server.token or not self.path_only.startswith(ANNOTATIONS):
            return True
        return self.headers.get("Authorization", "") == f"Bearer {self.server.token}"

    def send_fault(self, fault) -> None:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        self.send_json(fault.status, {"message": "Internal Server Error"}, headers)

    def body(self):
        try:
            return self.read_json()
        except ValueError:
            raise BadRequest("bad request data") from None

    def health(self):
        self.send_json(200, {"database": "ok", "version": "11.6.0-sandbox", "commit": "pampam"})

    def add_annotation(self):
        try:
            annotation_id = self.annotations.add(self.body())
        except BadRequest as error:
            self.send_json(400, {"message": str(error)})
            return
        self.send_json(200, {"message": "Annotation added", "id": annotation_id})

    def find_annotations(self):
        self.send_json(200, self.annotations.find(self.query))

    def get_annotation(self, id):
        found = self.annotations.get(int(id))
        if found is None:
            self.send_json(404, {"message": "Annotation not found"})
            return
        self.send_json(200, found)

    def patch_annotation(self, id):
        try:
            patched = self.annotations.patch(int(id), self.body())
        except BadRequest as error:
            self.send_json(400, {"message": str(error)})
            return
        if not patched:
            self.send_json(404, {"message": "Could not find annotation to update"})
            return
        verb = "patched" if self.command == "PATCH" else "updated"
        self.send_json(200, {"message": f"Annotation {verb}"})

    def delete_annotation(self, id):
        if not self.annotations.delete(int(id)):
            self.send_json(404, {"message": "Annotation not found"})
            return
        self.send_json(200, {"message": "Annotation deleted"})

    def solo_panel(self, uid, slug=None):
        request = self.panel_request(uid)
        shown = [
            a
            for a in self.annotations.find({"from": [str(request.start)], "to": [str(request.end)]})
            # The dashboard's own annotations (this panel or all panels) and org annotations.
            if a["dashboardUID"] in ("", uid) and a["panelId"] in (0, request.panel_id)
        ]
        page = panel.render_page(request, shown)
        self.send_bytes(200, page.encode(), "text/html; charset=utf-8", {"Cache-Control": "no-store"})

    def panel_request(self, uid: str) -> panel.PanelRequest:
        now = now_ms()
        end = panel.parse_time(self.query_one("to"), now, now)
        start = panel.parse_time(self.query_one("from"), now, end - SIX_HOURS_MS)
        if start >= end:
            start = end - SIX_HOURS_MS
        variables = tuple(
            (name.removeprefix("var-"), value)
            for name, values in sorted(self.query.items())
            if name.startswith("var-")
            for value in values
        )
        return panel.PanelRequest(
            uid=uid,
            panel_id=panel.parse_panel_id(self.query_one("panelId")),
            start=start,
            end=end,
            variables=variables,
            theme=self.query_one("theme", "dark"),
            refresh=panel.parse_refresh(self.query_one("refresh")),
        )
