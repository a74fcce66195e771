"""/api/v1/: services, environments, releases, builds, freezes, locks, DORA figures, me.

Views authorize (token scope, in releases.api.auth), load, call the rule-checked write in
releases (flows, builds, records), and serialize. Deployments are in releases.api.deployments.
"""

from datetime import timedelta

from auditlog.context import set_actor
from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.models import Environment, FreezeWindow, Lock
from releases import board, builds, dora, guards, rules
from releases.api import records
from releases.api import serializers as s
from releases.api.auth import token_of
from releases.api.models import ADMIN, ServiceAccount
from releases.api.schema import listed, operation, responses
from releases.models import Build, Release, Service


class Keyset(CursorPagination):
    """Keyset pages, newest first: `?cursor=` from `next`; as fast on page 1,000 as on page 1."""

    ordering = "-id"
    page_size = settings.HISTORY_PAGE_SIZE
    page_size_query_param = "limit"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": ["This page link is broken; start again from the first page."]})

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError({"limit": [f"A whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
        return parameters


# An API view; the class keyword `tag` files its operations under that section of the docs
# (`class BuildDetail(Endpoint, tag="builds")`). No docstring: drf-spectacular would make it the
# description of every operation that has none of its own.
# An API view that names its section of the docs in its class line: `class X(Endpoint, tag="builds")`.
# (A comment, not a docstring: drf-spectacular would copy a docstring into every operation.)
class Endpoint(APIView):
    def __init_subclass__(cls, tag: str = "", **kwargs):
        super().__init_subclass__(**kwargs)
        if tag:
            extend_schema(tags=[tag])(cls)


class KeysetList(Endpoint, generics.GenericAPIView):
    """A list endpoint in keyset pages of its `serializer_class`."""

    pagination_class = Keyset

    def paged(self, rows):
        """The response: the page of `rows` the request asks for, with its `next` link."""
        return self.get_paginated_response(self.get_serializer(self.paginate_queryset(rows), many=True).data)


def audited(request):
    """The audit log's actor for writes made with a token (the audit middleware saw no user)."""
    return set_actor(request.user, remote_addr=request.META.get("REMOTE_ADDR"))


def query(serializer_class, request):
    """Validated query-string parameters, or a 400 with field errors.

    An empty parameter (`?service=`) is an error rather than "any": leave it out instead.
    """
    serializer = serializer_class(data=request.query_params)
    empty = {name: ["Leave this parameter out rather than empty."] for name in serializer.fields}
    empty = {name: problem for name, problem in empty.items() if request.query_params.get(name) == ""}
    empty |= {
        name: ["Null characters are not allowed."]
        for name in serializer.fields
        if "\x00" in request.query_params.get(name, "")
    }
    if empty:
        raise exceptions.ValidationError(empty)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def body(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def audited_create(request, serializer_class, create, answer_class) -> Response:
    """201 with `answer_class` of what `create(user, **body)` made, audited as the caller."""
    data = body(serializer_class, request)
    with audited(request):
        row = create(request.user, **data)
    return Response(answer_class(row).data, status=status.HTTP_201_CREATED)


# --- services and environments ----------------------------------------------------------------


class ServiceList(Endpoint, generics.ListAPIView, tag="services"):
    queryset = Service.objects.select_related("owner_group")
    serializer_class = s.ServiceSerializer
    pagination_class = None

    @operation("listServices", "Every service", responses({200: s.ServiceSerializer(many=True)}))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ServiceDetail(Endpoint, generics.RetrieveAPIView, tag="services"):
    queryset = Service.objects.select_related("owner_group")
    serializer_class = s.ServiceSerializer
    lookup_field = "slug"

    @operation("getService", "One service", responses({200: s.ServiceSerializer}, 404))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def environment_extras(environments) -> dict:
    """Freezes, locks and what runs, for all `environments`, in a fixed number of queries."""
    held = guards.in_force(environments)
    for environment in environments:
        for row in [held[environment.pk].freeze, *held[environment.pk].upcoming, *held[environment.pk].locks]:
            if row is not None:
                row.environment = environment  # known already: no query per row
    extras = {
        e.pk: {
            "freezes": ([held[e.pk].freeze] if held[e.pk].freeze else []) + held[e.pk].upcoming,
            "locks": held[e.pk].locks,
            "cells": [],
        }
        for e in environments
    }
    for row in board.matrix(Service.objects.all(), environments):
        for cell in row.cells:
            extras[cell.environment.pk]["cells"].append(cell)
    return extras


ENVIRONMENTS = Environment.objects.select_related("cluster", "approver_group", "deployer_group")


class EnvironmentList(Endpoint, tag="environments"):
    @operation(
        "listEnvironments",
        "Every environment, in promotion order, with what runs there, its freezes and locks",
        responses({200: s.EnvironmentSerializer(many=True)}),
    )
    def get(self, request):
        environments = list(ENVIRONMENTS.all())
        context = {"request": request, "extras": environment_extras(environments)}
        return Response(s.EnvironmentSerializer(environments, many=True, context=context).data)


class EnvironmentDetail(Endpoint, tag="environments"):
    @operation(
        "getEnvironment",
        "One environment, with what runs there, its freezes and locks",
        responses({200: s.EnvironmentSerializer}, 404),
    )
    def get(self, request, slug):
        environment = get_object_or_404(ENVIRONMENTS, slug=slug)
        context = {"request": request, "extras": environment_extras([environment])}
        return Response(s.EnvironmentSerializer(environment, context=context).data)


# --- releases ---------------------------------------------------------------------------------

RELEASE_EXAMPLE = OpenApiExample(
    "From CI",
    request_only=True,
    value={
        "service": "storefront",
        "version": "1.4.2",
        "image": "registry.example/storefront:1.4.2",
        "git_sha": "3f6c2a1b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70",
        "build_url": "https://jenkins.example/job/storefront/job/build/112/",
        "test_summary": {"total": 412, "passed": 410, "failed": 0, "skipped": 2},
    },
)


class ReleaseList(KeysetList, tag="releases"):
    serializer_class = s.ReleaseSerializer

    @operation("listReleases", "Releases, newest first (keyset pages)", **listed(s.ReleaseSerializer, s.ReleaseFilter))
    def get(self, request):
        filters = query(s.ReleaseFilter, request)
        releases = Release.objects.select_related("service", "created_by")
        if filters.get("service"):
            releases = releases.filter(service=filters["service"])
        return self.paged(releases)

    @operation(
        "createRelease",
        "Record a release built by CI (immutable afterwards)",
        responses(
            {
                201: OpenApiResponse(s.ReleaseSerializer, "Recorded."),
                200: OpenApiResponse(s.ReleaseSerializer, "This exact artifact was recorded already."),
            },
            400,
            403,
            409,
        ),
        description=(
            "Needs the deploy scope and a deployer of some environment (or an admin). Sending the same "
            "artifact again (same version, image and sha) answers 200 with the release unchanged, so a "
            "retried CI step is harmless; the same version with another image or sha is a 409."
        ),
        request=s.ReleaseCreateSerializer,
        examples=[RELEASE_EXAMPLE],
    )
    def post(self, request):
        data = body(s.ReleaseCreateSerializer, request)
        summary = data.get("test_summary")
        artifact = records.Artifact(
            version=data["version"],
            image=data["image"],
            git_sha=data["git_sha"],
            build_url=data["build_url"],
            test_summary=dict(summary) if summary else None,
        )
        release, created = records.create_release(request.user, data["service"], artifact)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(release).data, status=code)


class ReleaseDetail(Endpoint, generics.RetrieveAPIView, tag="releases"):
    queryset = Release.objects.select_related("service", "created_by")
    serializer_class = s.ReleaseSerializer

    @operation("getRelease", "One release", responses({200: s.ReleaseSerializer}, 404))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- builds -----------------------------------------------------------------------------------

BUILDS = Build.objects.select_related("service", "triggered_by", "release")


def build_detail(request, build, status_code=status.HTTP_200_OK):
    after = query(s.AfterQuery, request)["after_seq"]
    events = list(build.events.filter(seq__gt=after).order_by("seq")[: s.TIMELINE_PAGE])
    serializer = s.BuildDetailSerializer(build, context={"request": request, "events": events})
    return Response(serializer.data, status=status_code)


class BuildList(KeysetList, tag="builds"):
    serializer_class = s.BuildSerializer

    @operation("listBuilds", "Jenkins builds, newest first (keyset pages)", **listed(s.BuildSerializer, s.BuildFilter))
    def get(self, request):
        filters = query(s.BuildFilter, request)
        found = BUILDS.filter(service=filters["service"]) if filters.get("service") else BUILDS.all()
        return self.paged(found)

    @operation(
        "startBuild",
        "Start a Jenkins build of a service",
        responses({201: s.BuildDetailSerializer}, 400, 403),
        request=s.BuildStartSerializer,
        example=("Build a tag", {"service": "storefront", "ref": "v1.4.2"}),
    )
    def post(self, request):
        data = body(s.BuildStartSerializer, request)
        build = builds.request_build(request.user, data["service"], ref=data["ref"], version=data["version"])
        return build_detail(request, BUILDS.get(pk=build.pk), status.HTTP_201_CREATED)


class BuildDetail(Endpoint, tag="builds"):
    @operation(
        "getBuild",
        "One build, with its log after `after_seq`",
        responses({200: s.BuildDetailSerializer}, 400, 404),
        parameters=[s.AfterQuery],
    )
    def get(self, request, pk):
        return build_detail(request, get_object_or_404(BUILDS, pk=pk))


class BuildAbort(Endpoint, tag="builds"):
    @operation(
        "abortBuild",
        "Stop a running build, or take a waiting one off the Jenkins queue",
        responses({200: s.BuildDetailSerializer}, 403, 404),
        request=None,
    )
    def post(self, request, pk):
        build = get_object_or_404(BUILDS, pk=pk)
        builds.abort_build(request.user, build)
        return build_detail(request, BUILDS.get(pk=pk))


# --- freezes and locks ------------------------------------------------------------------------


class FreezeList(Endpoint, tag="freezes and locks"):
    write_scope = ADMIN

    @operation("listFreezes", "Freeze windows in force or to come", **listed(s.FreezeSerializer, s.HoldFilter))
    def get(self, request):
        filters = query(s.HoldFilter, request)
        found = FreezeWindow.objects.not_over().select_related("environment", "created_by")
        if filters.get("environment"):
            found = found.filter(environment=filters["environment"])
        return Response(s.FreezeSerializer(found.order_by("starts_at", "id")[:500], many=True).data)

    @operation(
        "createFreeze",
        "Freeze an environment for a window (admin scope; deployers of it and admins)",
        responses({201: s.FreezeSerializer}, 400, 403),
        request=s.FreezeCreateSerializer,
        example=(
            "Group-buy event",
            {"environment": "prod", "ends_at": "2026-12-12T18:00:00Z", "reason": "12.12 group buy"},
        ),
    )
    def post(self, request):
        return audited_create(request, s.FreezeCreateSerializer, guards.schedule_freeze, s.FreezeSerializer)


class FreezeEnd(Endpoint, tag="freezes and locks"):
    write_scope = ADMIN

    @operation(
        "endFreeze",
        "End a freeze now (one that has not started is removed)",
        responses(
            {
                200: OpenApiResponse(s.FreezeSerializer, "Ended now."),
                204: OpenApiResponse(None, "It had not started: removed."),
            },
            403,
            404,
            409,
        ),
        request=None,
    )
    def post(self, request, pk):
        window = get_object_or_404(FreezeWindow.objects.select_related("environment", "created_by"), pk=pk)
        now = timezone.now()
        if window.ends_at <= now:
            raise rules.Refused(
                f"The freeze of {window.environment.name} ({window.reason}) is over already.", conflict=True
            )
        with audited(request):
            if window.starts_at >= now:
                guards.remove_freeze(request.user, window)
                return Response(status=status.HTTP_204_NO_CONTENT)
            guards.change_freeze(request.user, window, starts_at=window.starts_at, ends_at=now, reason=window.reason)
        return Response(s.FreezeSerializer(window).data)


class LockList(Endpoint, tag="freezes and locks"):
    write_scope = ADMIN

    @operation("listLocks", "Locks not released yet", **listed(s.LockSerializer, s.HoldFilter))
    def get(self, request):
        filters = query(s.HoldFilter, request)
        found = Lock.objects.in_force().select_related("environment", "locked_by", "released_by")
        if filters.get("environment"):
            found = found.filter(environment=filters["environment"])
        return Response(s.LockSerializer(found[:500], many=True).data)

    @operation(
        "createLock",
        "Lock an environment, or one service in it (admin scope; deployers of it and admins)",
        responses({201: s.LockSerializer}, 400, 403),
        request=s.LockCreateSerializer,
        example=("Incident", {"environment": "prod", "service": "storefront", "reason": "checkout incident"}),
    )
    def post(self, request):
        return audited_create(request, s.LockCreateSerializer, guards.lock, s.LockSerializer)


class LockRelease(Endpoint, tag="freezes and locks"):
    write_scope = ADMIN

    @operation("releaseLock", "Release a lock", responses({200: s.LockSerializer}, 403, 404, 409), request=None)
    def post(self, request, pk):
        lock = get_object_or_404(Lock.objects.select_related("environment", "locked_by"), pk=pk)
        with audited(request):
            released = guards.unlock(request.user, lock)
        return Response(s.LockSerializer(released).data)


# --- DORA and me ------------------------------------------------------------------------------


def figures(summary: dora.Summary) -> dict:
    def seconds(value: timedelta | None):
        return value.total_seconds() if value is not None else None

    return {
        "deployments": summary.deployments,
        "per_week": round(summary.per_week, 2),
        "lead_time_seconds": seconds(summary.lead_time),
        "change_failure_rate": summary.failure_rate,
        "failures": summary.failures,
        "finished": summary.finished,
        "time_to_restore_seconds": seconds(summary.time_to_restore),
    }


class Dora(Endpoint, tag="dora"):
    @operation(
        "getDora",
        "DORA figures of an environment over 7, 30 or 90 days (as on /dora/)",
        responses({200: s.DoraSerializer}, 400),
        parameters=[s.DoraQuery],
    )
    def get(self, request):
        data = query(s.DoraQuery, request)
        environment = data.get("environment") or _default_dora_environment()
        end = timezone.now()
        start = end - timedelta(days=int(data["days"]))
        rows = dora.load_rows(environment, start, end) if environment else []
        services = sorted({row.service for row in rows})
        result = {
            "environment": environment.slug if environment else None,
            "days": int(data["days"]),
            "start": start,
            "end": end,
            "overall": figures(dora.summarize(rows, start, end)),
            "services": [
                {"service": slug, **figures(dora.summarize([r for r in rows if r.service == slug], start, end))}
                for slug in services
            ],
        }
        return Response(s.DoraSerializer(result).data)


def _default_dora_environment():
    environments = list(Environment.objects.order_by("position", "slug"))
    production = [e for e in environments if e.is_production]
    return production[0] if production else (environments[-1] if environments else None)


class Me(Endpoint, tag="me"):
    @operation("getMe", "Who the token (or session) acts as, and the token's scopes", responses({200: s.MeSerializer}))
    def get(self, request):
        user = request.user
        token = token_of(request)
        return Response(
            s.MeSerializer(
                {
                    "username": user.username,
                    "is_staff": user.is_staff,
                    "is_service_account": ServiceAccount.objects.filter(user=user).exists(),
                    "groups": sorted(user.groups.values_list("name", flat=True)),
                    "token": {"name": token.name, "scopes": token.scopes, "expires_at": token.expires_at}
                    if token
                    else None,
                }
            ).data
        )
