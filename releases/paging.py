"""Keyset pages for the list pages (history, releases): newest first, `?before=<id>` for the
next page, as fast on page 1,000 as on page 1."""

from dataclasses import dataclass


@dataclass
class KeysetPage:
    rows: list
    next_query: str | None  # the query string of the next (older) page, if any
    first_query: str | None  # the query string of the first page, when this is not it


def keyset_page(request, found, size: int, before: int | None) -> KeysetPage:
    """One page of `found` (ordered by -id) below `before`, with links that keep the filters."""
    if before:
        found = found.filter(pk__lt=before)
    rows = list(found[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    query = request.GET.copy()
    query.pop("before", None)
    first_query = query.urlencode() if before else None
    next_query = None
    if more:
        query["before"] = rows[-1].pk
        next_query = query.urlencode()
    return KeysetPage(rows, next_query, first_query)
