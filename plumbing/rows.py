"""Rows that people read as a history: made at a moment, listed newest first.

`NEWEST_FIRST` is what "newest first" means everywhere: by creation time, and among rows
made in the same instant by id, so a list or a "latest" subquery never depends on the
order PostgreSQL happens to return ties in.
"""

from django.db import models
from django.utils import timezone

NEWEST_FIRST = ["-created_at", "-id"]


class NewestFirst(models.Model):
    """An abstract row with its creation time, ordered `NEWEST_FIRST` (a subclass's `Meta`
    extends `NewestFirst.Meta` to keep the ordering)."""

    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = NEWEST_FIRST
