"""The admin's name, and an audit log people can read: field names and the names of related
objects (not their ids), and for a creation only the values that were set."""

import re

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.utils.html import format_html, format_html_join

admin.site.site_header = "Pampam administration"
admin.site.site_title = "Pampam admin"
admin.site.index_title = "Clusters, environments, services and their rules"

EMPTY = {"None", "", "[]", "{}"}
# How a reverse relation ("approvals" of a user) printed in entries written before only a model's
# own columns were audited: "releases.Approval.None". Nothing a reader can use.
RELATED_MANAGER = re.compile(r"^\w+\.\w+\.None$")


def readable_changes(entry) -> list[tuple[str, str, str]]:
    """(field, before, after) with verbose names, choice labels and related objects by name."""
    rows = [_membership_change(entry, name, change) for name, change in _memberships(entry)]
    for name, values in entry.changes_display_dict.items():
        if not isinstance(values, list | tuple) or len(values) != 2:
            continue
        before, after = (str(v) for v in values)
        if RELATED_MANAGER.match(after) or RELATED_MANAGER.match(before):
            continue
        if entry.action == LogEntry.Action.CREATE:
            if after in EMPTY:
                continue
            before = ""
        rows.append((str(name), "" if before in EMPTY else before, "" if after in EMPTY else after))
    return sorted(rows)


def _memberships(entry) -> list[tuple[str, dict]]:
    """Many-to-many changes (groups of a user, permissions of a group): which were added or removed."""
    return [
        (name, change)
        for name, change in (entry.changes_dict or {}).items()
        if isinstance(change, dict) and change.get("type") == "m2m"
    ]


def _membership_change(entry, name: str, change: dict) -> tuple[str, str, str]:
    model = entry.content_type.model_class()
    label = str(model._meta.get_field(name).verbose_name) if model else name
    objects = ", ".join(str(o) for o in change.get("objects") or [])
    if change.get("operation") == "add":
        return (label, "", f"added {objects}")
    return (label, f"removed {objects}", "")


admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class ReadableLogEntryAdmin(LogEntryAdmin):
    @admin.display(description="Changes")
    def msg_short(self, obj):
        if obj.action in (LogEntry.Action.DELETE, LogEntry.Action.ACCESS):
            return ""
        names = [name for name, _, _ in readable_changes(obj)]
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        return f"{len(names)} change{'s' * (len(names) != 1)}: {shown}" if names else ""

    @admin.display(description="Changes")
    def msg(self, obj):
        rows = readable_changes(obj)
        if not rows:
            return "—"
        if obj.action == LogEntry.Action.CREATE:
            body = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", ((n, a) for n, _, a in rows))
            return format_html("<table><tr><th>Field</th><th>Set to</th></tr>{}</table>", body)
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><tr><th>Field</th><th>From</th><th>To</th></tr>{}</table>", body)
