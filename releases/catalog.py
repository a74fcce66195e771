"""The catalog as pages read it: environments and services, kept in each process's memory
under the catalog's freshness token (plumbing.fragments), so a page reads them without a query
while nothing in the catalog changed (a save of a service, an environment, a group or a person
renews the token: releases.receivers).

Only pages read here. What decides and then changes something (flows, and the rules when no
page passes what it read) reads the database itself.
"""

from django.contrib.auth import get_user_model

from clusters.models import Environment
from plumbing import fragments
from releases.models import Release, Service


def environments() -> list[Environment]:
    """Every environment, archived ones too, in promotion-path order, with their groups."""
    return fragments.cached("environments", [fragments.CATALOG], [], _read_environments)


def _read_environments() -> list[Environment]:
    return list(_with_groups())


def _with_groups():
    return Environment.objects.select_related("deployer_group", "approver_group")


def in_use(everywhere: list[Environment] | None = None) -> list[Environment]:
    """The environments that are not archived (Environment.objects.in_use), in path order: of
    `everywhere` when the page has read `environments()` already."""
    everywhere = environments() if everywhere is None else everywhere
    return [environment for environment in everywhere if not environment.archived]


def service(slug: str) -> Service | None:
    """The service called `slug`, or None."""
    return fragments.cached("service", [fragments.CATALOG], [slug], lambda: Service.objects.filter(slug=slug).first())


# What a row may name that is kept here, beside its service and environment.
NAMED = (("release", Release), ("previous_release", Release), ("requested_by", None), ("created_by", None))


def of(row):
    """`row` (a deployment or a release) with the service, environment, releases and people it
    names, from here: a page reads the row alone, without joining them (with every column they
    have) in a query that costs more to compile than to run."""
    row.service = _by_id(Service, row.service_id)
    if hasattr(row, "environment_id"):
        kept = next((e for e in environments() if e.pk == row.environment_id), None)
        # Not kept: made since this request read the catalog's token (its renewal is on its way).
        row.environment = kept or _with_groups().get(pk=row.environment_id)
    for name, model in NAMED:
        if hasattr(row, f"{name}_id"):
            setattr(row, name, _by_id(model or get_user_model(), getattr(row, f"{name}_id")))
    return row


def _by_id(model, pk):
    if pk is None:
        return None
    return fragments.cached(f"{model._meta.label}-by-id", [fragments.CATALOG], [pk], lambda: model.objects.get(pk=pk))
