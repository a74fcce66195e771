"""What the API reads and writes. Output serializers are read-only views of the models;
input serializers validate a request body or query string (bad input → 400 with field errors)."""

import re
from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.models import Environment, FreezeWindow, Lock
from releases import rules, states
from releases.builds import VERSION_RE
from releases.models import Approval, Build, BuildEvent, CheckSample, Deployment, DeploymentEvent, Release, Service

SHA_RE = re.compile(r"^[0-9a-fA-F]{7,40}$")
REF_RE = re.compile(r"^[A-Za-z0-9._/-]{1,100}$")
IMAGE_RE = re.compile(r"^[^\s]{1,500}$")
TIMELINE_PAGE = 1000


class Username(serializers.SlugRelatedField):
    """A user, by username; null when the user was deleted (or never set)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(slug_field="username", **kwargs)


def group_name(**kwargs):
    return serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True, **kwargs)


@extend_schema_field(OpenApiTypes.URI)
class WebUrl(serializers.Field):
    """Absolute URL of the object's page in the portal."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, obj):
        request = self.context.get("request")
        path = obj.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


def _slug(model, **kwargs):
    return serializers.SlugRelatedField(slug_field="slug", queryset=model.objects.all(), **kwargs)


def _matching(regex, invalid: str, **kwargs):
    """A string that must match `regex`; `invalid` says what a valid one looks like."""
    return serializers.RegexField(regex, error_messages={"invalid": invalid}, **kwargs)


def _version(**kwargs):
    return _matching(VERSION_RE, "A version has letters, digits and . _ + - only.", max_length=100, **kwargs)


class Body(serializers.Serializer):
    """A JSON request body whose values must have the JSON type the schema gives them.

    DRF would quietly turn `"reason": 0` into "0" and `"release": "7"` into 7; a client sending
    the wrong type has a bug worth a 400.
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {
                name: [problem]
                for name, field in self.fields.items()
                if not field.read_only and data.get(name) is not None
                for problem in [json_type_problem(field, data[name])]
                if problem
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def json_type_problem(field, value) -> str:
    """Why `value` has not the JSON type `field` reads, or ""."""
    if isinstance(field, serializers.BooleanField):
        return "" if isinstance(value, bool) else "Expected true or false."
    if isinstance(field, serializers.IntegerField | serializers.PrimaryKeyRelatedField):
        return "" if isinstance(value, int) and not isinstance(value, bool) else "Expected a whole number."
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return "Expected a list."
        return next((p for p in (json_type_problem(field.child, item) for item in value) if p), "")
    if isinstance(field, serializers.Serializer | serializers.DictField):
        return "" if isinstance(value, dict) else "Expected an object."
    if isinstance(field, serializers.RelatedField) and value == "":
        return "Leave it out (or null) rather than empty."
    if isinstance(value, str) and "\x00" in value:
        return "Null characters are not allowed."
    if isinstance(field, serializers.CharField | serializers.RelatedField | serializers.DateTimeField):
        return "" if isinstance(value, str) else "Expected a string."
    return ""


# --- services, environments ---------------------------------------------------------------------


class ServiceSerializer(serializers.ModelSerializer):
    owner_group = group_name()
    web_url = WebUrl()

    class Meta:
        model = Service
        fields = [
            "slug",
            "name",
            "description",
            "github_repo",
            "jenkins_build_job",
            "image_repository",
            "k8s_deployment",
            "k8s_container",
            "owner_group",
            "web_url",
        ]
        read_only_fields = fields


class FreezeSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = Username()
    active = serializers.SerializerMethodField()

    class Meta:
        model = FreezeWindow
        fields = ["id", "environment", "starts_at", "ends_at", "reason", "created_by", "active"]
        read_only_fields = fields

    def get_active(self, freeze) -> bool:
        return freeze.starts_at <= timezone.now() < freeze.ends_at


class LockSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    service = serializers.CharField(source="service_slug", help_text="Empty: every service.")
    locked_by = Username()
    released_by = Username()
    active = serializers.SerializerMethodField(help_text="It stops deployments now (not released, not past `until`).")

    class Meta:
        model = Lock
        fields = [
            "id",
            "environment",
            "service",
            "reason",
            "locked_by",
            "created_at",
            "until",
            "released_at",
            "released_by",
            "active",
        ]
        read_only_fields = fields

    def get_active(self, lock) -> bool:
        return lock.in_force()


class ReleaseRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Release
        fields = ["id", "version", "image", "git_sha"]
        read_only_fields = fields


class DeploymentRefSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="release.version")
    state_label = serializers.CharField()

    class Meta:
        model = Deployment
        fields = ["id", "kind", "state", "state_label", "version", "created_at", "finished_at"]
        read_only_fields = fields


class RunningSerializer(serializers.Serializer):
    """One service in one environment: what the portal last put there and what the cluster runs."""

    service = serializers.CharField(source="service.slug")
    version = serializers.CharField(help_text="Version of the last successful deployment; empty if none.")
    running = DeploymentRefSerializer(allow_null=True, help_text="The last successful deployment.")
    latest = DeploymentRefSerializer(allow_null=True, help_text="The newest deployment, whatever its state.")
    image = serializers.SerializerMethodField(help_text="The image the cluster reports, when observed.")
    drifted = serializers.BooleanField(help_text="The cluster runs something the portal did not put there.")

    def get_image(self, cell) -> str | None:
        return cell.workload.image if cell.workload else None


class EnvironmentSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    approver_group = group_name()
    deployer_group = group_name()
    frozen = serializers.SerializerMethodField()
    freezes = serializers.SerializerMethodField(help_text="Freezes in force or to come.")
    locks = serializers.SerializerMethodField(help_text="Locks not released yet.")
    services = serializers.SerializerMethodField(help_text="What runs here now, per service.")

    class Meta:
        model = Environment
        fields = [
            "slug",
            "name",
            "position",
            "cluster",
            "namespace",
            "is_production",
            "required_approvals",
            "approver_group",
            "deployer_group",
            "allow_self_approval",
            "requires_previous",
            "requires_passing_tests",
            "deploy_via",
            "auto_rollback",
            "frozen",
            "freezes",
            "locks",
            "services",
        ]
        read_only_fields = fields

    def _extra(self, environment, key):
        return self.context["extras"][environment.pk][key]

    def get_frozen(self, environment) -> bool:
        now = timezone.now()
        return any(f.starts_at <= now < f.ends_at for f in self._extra(environment, "freezes"))

    @extend_schema_field(FreezeSerializer(many=True))
    def get_freezes(self, environment):
        return FreezeSerializer(self._extra(environment, "freezes"), many=True).data

    @extend_schema_field(LockSerializer(many=True))
    def get_locks(self, environment):
        return LockSerializer(self._extra(environment, "locks"), many=True).data

    @extend_schema_field(RunningSerializer(many=True))
    def get_services(self, environment):
        return RunningSerializer(self._extra(environment, "cells"), many=True).data


# --- releases ---------------------------------------------------------------------------------


class TestSummarySerializer(Body):
    total = serializers.IntegerField(min_value=0, max_value=10**9)
    passed = serializers.IntegerField(min_value=0, max_value=10**9, required=False)
    failed = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    skipped = serializers.IntegerField(min_value=0, max_value=10**9, required=False, default=0)
    failed_tests = serializers.ListField(
        child=serializers.CharField(max_length=500), max_length=200, required=False, default=list
    )

    def validate(self, data):
        data.setdefault("passed", data["total"] - data["failed"] - data["skipped"])
        if data["passed"] + data["failed"] + data["skipped"] > data["total"]:
            raise serializers.ValidationError("passed + failed + skipped is more than total.")
        if data["passed"] < 0:
            raise serializers.ValidationError("failed + skipped is more than total.")
        return data


class ReleaseSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    build_url = serializers.CharField(source="jenkins_build_url")
    test_summary = serializers.DictField(help_text="total, passed, failed, skipped, failed_tests")
    created_by = Username()
    web_url = WebUrl()

    class Meta:
        model = Release
        fields = [
            "id",
            "service",
            "version",
            "image",
            "git_sha",
            "build_url",
            "test_summary",
            "source",
            "created_by",
            "created_at",
            "web_url",
        ]
        read_only_fields = fields


class ReleaseCreateSerializer(Body):
    service = _slug(Service)
    version = _version()
    image = _matching(
        IMAGE_RE,
        "An image reference has no spaces (at most 500 characters).",
        required=False,
        help_text="Image reference; default: the service's image repository, tagged with the version.",
    )
    git_sha = _matching(SHA_RE, "A git sha is 7 to 40 hex digits.", required=False, default="", allow_blank=True)
    build_url = serializers.URLField(max_length=200, required=False, default="", allow_blank=True)
    test_summary = TestSummarySerializer(required=False)

    def validate(self, data):
        data.setdefault("image", f"{data['service'].image_repository}:{data['version']}")
        data["git_sha"] = data["git_sha"].lower()
        return data


class ReleaseFilter(serializers.Serializer):
    service = _slug(Service, required=False, help_text="Only releases of this service (slug).")


# --- deployments ------------------------------------------------------------------------------


class DeploymentSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    release = ReleaseRefSerializer()
    previous_release = ReleaseRefSerializer(allow_null=True)
    state = serializers.ChoiceField(choices=states.CHOICES)
    state_label = serializers.CharField()
    tone = serializers.CharField(help_text="ok, bad, warn, info, wait or muted")
    is_active = serializers.BooleanField()
    is_final = serializers.SerializerMethodField()
    requested_by = Username(allow_null=True)
    rolls_back = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="For a rollback: the deployment it undoes."
    )
    automatic = serializers.BooleanField(help_text="Started by the portal itself (an automatic rollback).")
    progress = serializers.DictField(help_text="The last rollout snapshot: desired, updated, ready, available, …")
    web_url = WebUrl()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "service",
            "environment",
            "release",
            "previous_release",
            "kind",
            "rolls_back",
            "automatic",
            "state",
            "state_label",
            "tone",
            "is_active",
            "is_final",
            "reason",
            "override_reason",
            "requested_by",
            "required_approvals",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
            "last_seq",
            "web_url",
        ]
        read_only_fields = fields

    def get_is_final(self, deployment) -> bool:
        return deployment.state in states.FINAL


class ApprovalSerializer(serializers.ModelSerializer):
    user = Username(allow_null=False)

    class Meta:
        model = Approval
        fields = ["user", "decision", "comment", "created_at"]
        read_only_fields = fields


class EventSerializer(serializers.ModelSerializer):
    actor = Username(allow_null=True)
    at = serializers.DateTimeField(source="created_at")
    data = serializers.DictField(help_text='Transitions carry {"from", "to", "label", "tone", "reason"}.')

    class Meta:
        model = DeploymentEvent
        fields = ["seq", "kind", "message", "data", "actor", "at"]
        read_only_fields = fields


class VerdictSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class MaySerializer(serializers.Serializer):
    """What the caller may do to this deployment now, and why not (the page's buttons)."""

    approve = VerdictSerializer()
    reject = VerdictSerializer()
    cancel = VerdictSerializer()


class ProbeSerializer(serializers.Serializer):
    url = serializers.CharField()
    requests = serializers.IntegerField()
    failed = serializers.IntegerField()
    p50 = serializers.FloatField(help_text="Latency percentiles in milliseconds.")
    p95 = serializers.FloatField()
    p99 = serializers.FloatField()
    text = serializers.CharField(help_text='e.g. "312 requests, 0 failed, p99 41 ms"')


class CheckReadingSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.FloatField(allow_null=True, help_text="null: no data, or Prometheus unreachable")
    threshold = serializers.FloatField()
    outcome = serializers.ChoiceField(choices=CheckSample.OUTCOMES)
    at = serializers.DateTimeField()


class VerificationSerializer(serializers.Serializer):
    """Prometheus checks and the traffic probe of a guarded rollout (releases/verdicts.py)."""

    bake_started_at = serializers.DateTimeField(allow_null=True)
    bake_seconds = serializers.IntegerField()
    probe = ProbeSerializer(allow_null=True)
    checks = CheckReadingSerializer(many=True, help_text="The last evaluation of each check.")


class DeploymentDetailSerializer(DeploymentSerializer):
    approvals = ApprovalSerializer(many=True)
    approvals_count = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField(
        help_text=f"Events after `after_seq`, oldest first, at most {TIMELINE_PAGE}."
    )
    timeline_complete = serializers.SerializerMethodField(help_text="False when more events follow: ask again.")
    may = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [
            *DeploymentSerializer.Meta.fields,
            "approvals",
            "approvals_count",
            "timeline",
            "timeline_complete",
            "may",
            "verification",
        ]
        read_only_fields = fields

    def get_approvals_count(self, deployment) -> int:
        return rules.approvals_count(deployment, deployment.approvals.all())

    @extend_schema_field(EventSerializer(many=True))
    def get_timeline(self, deployment):
        return EventSerializer(self.context["events"], many=True).data

    def get_timeline_complete(self, deployment) -> bool:
        events = self.context["events"]
        return not events or events[-1].seq >= deployment.last_seq

    @extend_schema_field(VerificationSerializer)
    def get_verification(self, deployment):
        last = {}
        for sample in deployment.check_samples.order_by("at", "id"):
            last[sample.name] = sample
        return VerificationSerializer(
            {
                "bake_started_at": deployment.bake_started_at,
                "bake_seconds": deployment.bake_seconds,
                "probe": deployment.probe_summary,
                "checks": list(last.values()),
            }
        ).data

    @extend_schema_field(MaySerializer)
    def get_may(self, deployment):
        return {
            name: {"allowed": bool(verdict), "reasons": verdict.reasons}
            for name, verdict in self.context["may"].items()
        }


class DeploymentRequestSerializer(Body):
    release = serializers.PrimaryKeyRelatedField(
        queryset=Release.objects.select_related("service"), required=False, help_text="Release id, or:"
    )
    service = _slug(Service, required=False, help_text="with `version`: the release of this service")
    version = serializers.CharField(max_length=100, required=False)
    environment = _slug(Environment)
    override_reason = serializers.CharField(
        max_length=500, required=False, default="", allow_blank=True, help_text="Admins: pass a freeze or a lock."
    )

    def validate(self, data):
        if data.get("release"):
            return data
        service, version = data.get("service"), data.get("version")
        if not (service and version):
            raise serializers.ValidationError({"release": "Give a release id, or a service and a version."})
        release = Release.objects.select_related("service").filter(service=service, version=version).first()
        if release is None:
            raise serializers.ValidationError({"version": f"{service.name} has no release {version}."})
        data["release"] = release
        return data


class ApproveSerializer(Body):
    comment = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class RejectSerializer(Body):
    comment = serializers.CharField(
        max_length=2000,
        error_messages={
            "required": "Say why you reject it, so the requester can fix it.",
            "blank": "Say why you reject it, so the requester can fix it.",
        },
    )


class CancelSerializer(Body):
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class RollbackSerializer(Body):
    environment = _slug(Environment)
    reason = serializers.CharField(
        max_length=500, required=False, default="", allow_blank=True, help_text="Required in production."
    )
    override_reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)

    def validate(self, data):
        if data["environment"].is_production and not data["reason"].strip():
            raise serializers.ValidationError({"reason": f"Say why you roll back in {data['environment'].name}."})
        return data


def _dates_in_order(data):
    if data.get("since") and data.get("until") and data["since"] > data["until"]:
        raise serializers.ValidationError({"until": "The end date is before the start date."})
    return data


class DeploymentFilter(serializers.Serializer):
    """The filters of /history/."""

    service = _slug(Service, required=False, help_text="Only this service (slug).")
    environment = _slug(Environment, required=False, help_text="Only this environment (slug).")
    state = serializers.ChoiceField(choices=states.CHOICES, required=False, help_text="Only deployments in this state.")
    requester = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        required=False,
        help_text="Only deployments this user asked for (username).",
    )
    since = serializers.DateField(required=False, help_text="Created on or after this day.")
    until = serializers.DateField(required=False, help_text="Created on or before this day.")

    def validate(self, data):
        return _dates_in_order(data)


class WaitQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(
        min_value=0, max_value=2**31, required=False, help_text="Only timeline events after this seq."
    )

    def get_fields(self):
        # The longest wait is a setting, read when asked (validation and the schema agree).
        fields = super().get_fields()
        fields["wait"] = serializers.IntegerField(
            min_value=0,
            max_value=settings.API_LONG_POLL_MAX_SECONDS,
            required=False,
            default=0,
            help_text=(
                "Seconds to wait for a change: the answer comes as soon as an event after `after_seq` exists "
                "(or, without `after_seq`, a new one), the deployment is final, or the time is up."
            ),
        )
        return fields


# --- builds -----------------------------------------------------------------------------------


class BuildSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    url = serializers.CharField(help_text="The build in Jenkins; empty until Jenkins has started it.")
    triggered_by = Username(allow_null=True)
    release = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    parameters = serializers.DictField(child=serializers.CharField())
    test_summary = serializers.DictField()
    web_url = serializers.SerializerMethodField()

    class Meta:
        model = Build
        fields = [
            "id",
            "service",
            "job_name",
            "number",
            "url",
            "state",
            "result",
            "reason",
            "parameters",
            "trigger",
            "triggered_by",
            "version",
            "git_sha",
            "test_summary",
            "release",
            "created_at",
            "started_at",
            "finished_at",
            "last_seq",
            "web_url",
        ]
        read_only_fields = fields

    def get_web_url(self, build) -> str:
        request = self.context.get("request")
        path = f"/builds/{build.pk}/"
        return request.build_absolute_uri(path) if request else path


class BuildEventSerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="created_at")
    data = serializers.DictField()

    class Meta:
        model = BuildEvent
        fields = ["seq", "kind", "message", "data", "at"]
        read_only_fields = fields


class BuildDetailSerializer(BuildSerializer):
    log = serializers.SerializerMethodField(help_text=f"Events after `after_seq`, at most {TIMELINE_PAGE}.")

    class Meta(BuildSerializer.Meta):
        fields = [*BuildSerializer.Meta.fields, "log"]
        read_only_fields = fields

    @extend_schema_field(BuildEventSerializer(many=True))
    def get_log(self, build):
        return BuildEventSerializer(self.context["events"], many=True).data


class BuildStartSerializer(Body):
    service = _slug(Service)
    ref = _matching(REF_RE, "A git ref has letters, digits and . _ / - only.", required=False, default="")
    version = _version(required=False, default="")


class AfterQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(
        min_value=0, max_value=2**31, required=False, default=0, help_text="Only log events after this seq."
    )


class BuildFilter(serializers.Serializer):
    service = _slug(Service, required=False, help_text="Only builds of this service (slug).")


# --- freezes and locks ------------------------------------------------------------------------


class FreezeCreateSerializer(Body):
    environment = _slug(Environment)
    starts_at = serializers.DateTimeField(required=False, help_text="Default: now.")
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=200)

    def validate(self, data):
        now = timezone.now()
        if data["ends_at"] <= now:
            raise serializers.ValidationError({"ends_at": "This freeze would be over already."})
        data.setdefault("starts_at", now)
        if data["ends_at"] <= data["starts_at"]:
            raise serializers.ValidationError({"ends_at": "A freeze ends after it starts."})
        return data


class LockCreateSerializer(Body):
    environment = _slug(Environment)
    service = _slug(Service, required=False, allow_null=True, default=None, help_text="Default: every service.")
    reason = serializers.CharField(max_length=200)
    until = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="It lifts by itself then (default: when released)."
    )

    def validate_until(self, until):
        if until is not None and until <= timezone.now():
            raise serializers.ValidationError("This lock would be over already.")
        return until


class HoldFilter(serializers.Serializer):
    environment = _slug(Environment, required=False, help_text="Only this environment (slug).")


# --- DORA -------------------------------------------------------------------------------------


class DoraQuery(serializers.Serializer):
    environment = _slug(Environment, required=False, help_text="Default: the production environment.")
    days = serializers.ChoiceField(choices=[7, 30, 90], required=False, default=30, help_text="The window, in days.")


class FiguresSerializer(serializers.Serializer):
    deployments = serializers.IntegerField(help_text="Successful deployments (not rollbacks) in the window.")
    per_week = serializers.FloatField()
    lead_time_seconds = serializers.FloatField(allow_null=True, help_text="Median, commit (or release) to success.")
    change_failure_rate = serializers.FloatField(allow_null=True, help_text="0..1")
    failures = serializers.IntegerField()
    finished = serializers.IntegerField()
    time_to_restore_seconds = serializers.FloatField(allow_null=True, help_text="Median.")


class ServiceFiguresSerializer(FiguresSerializer):
    service = serializers.CharField()


class DoraSerializer(serializers.Serializer):
    environment = serializers.CharField(allow_null=True)
    days = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    overall = FiguresSerializer()
    services = ServiceFiguresSerializer(many=True)


# --- me and tokens ----------------------------------------------------------------------------


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()
    is_service_account = serializers.BooleanField()
    groups = serializers.ListField(child=serializers.CharField())
    token = serializers.DictField(allow_null=True, help_text="name, scopes and expiry of the token used; null")
