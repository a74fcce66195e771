"""Rendered page fragments, kept until what they show changes.

A part of a page that is costly to render from a large history (the dashboard's matrix, a
history page, a deployment's timeline, the DORA tables) is cached under a key naming everything
it shows: the *tokens* of the scopes of data it reads, plus what else it depends on (the query,
the minute for "3 minutes ago", the freezes in force).

- A change to a scope replaces the scope's token once the change commits (`touch`): the next
  read misses and renders anew from the database. The tokens are rows, so every process sees
  the same ones and a restart keeps them; a new token is random, so no old key is ever reused.
- A reader reads the tokens before the data: what it caches under a token is never older than
  the token. A process killed between its commit and its touch leaves a fragment stale for at
  most `TTL`; the live pages are told of the change by the same after-commit broadcast anyway.
- The fragments themselves stay in each process's memory (the `fragments` cache): losing them
  costs one render.

Scopes are the kinds of `live.activity` summaries, sent after every change an open page
redraws for, which touch their scope: `deployment` (created, moved, progress), `report`
(and each round of a rollout's checks), `workload` (the cluster watcher), `guard` (locks,
freezes), `build`; `catalog`: services, environments, releases, commits, checks, groups and
people edited anywhere (releases.receivers); and `dora`: the DORA figures /metrics serves,
stored again (releases.dora.export).

Beside rendered HTML, rows a page reads are kept the same way (`cached`): the catalog as pages
read it (releases.catalog), the freezes and locks not over yet (releases.guards.in_force), a
service's cells, a rollout's check charts. Within one GET request the tokens are read once
(`ReadTokensOnce`).
"""

import hashlib
import secrets
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TypeVar

from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django.utils.safestring import mark_safe

from plumbing.models import Freshness

TTL = 300
T = TypeVar("T")
_MISSING = object()
DEPLOYMENT, REPORT, WORKLOAD, GUARD, BUILD = "deployment", "report", "workload", "guard", "build"
CATALOG, DORA = "catalog", "dora"
SCOPES = (DEPLOYMENT, REPORT, WORKLOAD, GUARD, BUILD, CATALOG, DORA)
# The tokens a GET request read (`ReadTokensOnce`): a page of several kept parts reads them once.
_read: ContextVar[dict[str, str] | None] = ContextVar("fragment_tokens", default=None)


def _store():
    return caches["fragments"]


def touch(*scopes: str) -> None:
    """Give `scopes` new tokens once the current transaction commits (at once outside one). A
    renewal that fails (the database went away after the commit) is logged, not raised: the
    change itself is committed, and kept fragments expire after `TTL` anyway."""
    transaction.on_commit(lambda: _renew(scopes), robust=True)


def _renew(scopes: Iterable[str]) -> None:
    rows = [Freshness(scope=scope, token=secrets.token_hex(16)) for scope in sorted(set(scopes))]
    Freshness.objects.bulk_create(rows, update_conflicts=True, unique_fields=["scope"], update_fields=["token"])


def tokens(scopes: Iterable[str]) -> dict[str, str]:
    """The scopes' current tokens (one query). Within a GET request (`ReadTokensOnce`) the first
    read takes every scope's, and the request's other kept parts use them: read before any data
    the request reads, they are no newer than it. Migration 0002 makes the first tokens of
    `SCOPES`; a scope without one (a flushed database, a new scope) gets it here."""
    wanted = sorted(set(scopes))
    memo = _read.get()
    if memo is None:
        return _read_tokens(wanted)
    if any(scope not in memo for scope in wanted):
        memo.update(_read_tokens(sorted({*wanted, *SCOPES})))
    return {scope: memo[scope] for scope in wanted}


def _read_tokens(wanted: list[str]) -> dict[str, str]:
    found = dict(Freshness.objects.filter(scope__in=wanted).values_list("scope", "token"))
    missing = [scope for scope in wanted if scope not in found]
    if missing:
        # Concurrent readers may both create one: the first stays, and both read it back.
        created = [Freshness(scope=scope, token=secrets.token_hex(16)) for scope in missing]
        Freshness.objects.bulk_create(created, ignore_conflicts=True)
        found.update(Freshness.objects.filter(scope__in=missing).values_list("scope", "token"))
    return found


class ReadTokensOnce:
    """Middleware: a GET (or HEAD) request reads the tokens once for all its kept parts. Not
    other methods: a POST that changes something and then renders would find its own change
    under the tokens it read before."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        reset = _read.set({})
        try:
            return self.get_response(request)
        finally:
            _read.reset(reset)


def minute(now=None) -> str:
    """A key part for fragments that say "3 minutes ago": they are rendered anew each minute."""
    return (now or timezone.now()).strftime("%Y%m%d%H%M")


def cached(name: str, scopes: Iterable[str], parts: Iterable, render: Callable[[], T]) -> T:
    """The fragment `name` for the current tokens of `scopes` and `parts`: from the cache, or
    `render()`ed (after the tokens were read) and kept. Usually HTML; any value that pickles
    (rows read for a page, counted families) is kept the same way, and each read is a copy."""
    current = tokens(scopes)
    text = repr((name, sorted(current.items()), list(parts)))
    key = f"fragment:{name}:{hashlib.sha256(text.encode()).hexdigest()}"
    store = _store()
    kept = store.get(key, _MISSING)
    if kept is _MISSING:
        kept = render()
        store.set(key, kept, TTL)
    return kept


def html(name: str, scopes: Iterable[str], parts: Iterable, render: Callable[[], str], *, per_minute=True):
    """A part of a page the template engine rendered (so escaped), kept as `cached` keeps it:
    also per time zone (it shows local times) and, where it says "3 minutes ago", per minute."""
    parts = [*parts, timezone.get_current_timezone_name(), minute() if per_minute else None]
    return mark_safe(cached(name, scopes, parts, render))  # noqa: S308 (rendered by the template engine)


def clear() -> None:
    """Forget every fragment of this process (benchmarks: the first render's cost)."""
    _store().clear()
