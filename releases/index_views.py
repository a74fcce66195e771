"""Indexes in the navigation: every service, and the releases newest first."""

from django import forms
from django.db.models import OuterRef, Subquery
from django.shortcuts import render

from plumbing.rows import NEWEST_FIRST
from releases import board, catalog, states
from releases.models import Deployment, Release, Service
from releases.paging import keyset_page

PAGE = 50


def services(request):
    """Each service with what runs in each environment and its newest release."""
    environments = catalog.in_use()
    newest_release = Release.objects.filter(service=OuterRef("pk")).order_by(*NEWEST_FIRST).values("pk")[:1]
    all_services = list(Service.objects.annotate(newest_release=Subquery(newest_release)))
    running = board.latest_per_pair(all_services, environments, state=states.SUCCEEDED)
    wanted = [s.newest_release for s in all_services if s.newest_release]
    newest = {r.service_id: r for r in Release.objects.filter(pk__in=wanted)}
    rows = [
        (service, newest.get(service.pk), [running.get((service.pk, env.pk)) for env in environments])
        for service in all_services
    ]
    return render(request, "releases/services.html", {"rows": rows, "environments": environments})


class ReleaseFilter(forms.Form):
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(), to_field_name="slug", required=False, empty_label="Any service"
    )
    before = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)


def releases(request):
    """Releases newest first, keyset-paged, with the environments each has succeeded in."""
    form = ReleaseFilter(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(request, "releases/releases.html", {"form": form, "rows": []}, status=400)
    data = form.cleaned_data if form.is_bound else {}
    found = Release.objects.select_related("service").order_by("-id")
    if data.get("service"):
        found = found.filter(service=data["service"])
    paged = keyset_page(request, found, PAGE, data.get("before"))
    page = paged.rows
    environments = catalog.in_use()
    reached: dict[int, set[int]] = {r.pk: set() for r in page}
    done = Deployment.objects.filter(release__in=page, state=states.SUCCEEDED).values_list(
        "release_id", "environment_id"
    )
    for release_id, environment_id in done:
        reached[release_id].add(environment_id)
    return render(
        request,
        "releases/releases.html",
        {
            "form": form,
            "rows": [(r, [(e, e.pk in reached[r.pk]) for e in environments]) for r in page],
            "next_query": paged.next_query,
            "first_query": paged.first_query,
        },
    )
