from django import forms
from django.contrib import admin
from django.utils import timezone

from clusters.models import Lock
from releases.forms import CheckForm
from releases.models import (
    Build,
    BuildEvent,
    Check,
    Deployment,
    DeploymentEvent,
    Release,
    Service,
    SlackAccount,
    Verification,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through the portal's flows: looked at here, never added or edited."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


class ReadOnlyEventsInline(admin.TabularInline):
    """A row's events (its `fields`), shown read-only: none added, changed or deleted here."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class CheckInline(admin.StackedInline):
    model = Check
    form = CheckForm
    extra = 0
    fields = ["name", "environment", "query", ("comparison", "threshold", "window"), "enabled"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "github_repo", "jenkins_build_job", "k8s_deployment"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [CheckInline]


@admin.register(Check)
class CheckAdmin(admin.ModelAdmin):
    """Prometheus checks of rollouts; each query is validated against Prometheus before it is saved."""

    form = CheckForm
    list_display = ["name", "service", "environment", "comparison", "threshold", "window", "enabled"]
    list_filter = ["service", "environment", "enabled"]


@admin.register(Verification)
class VerificationAdmin(admin.ModelAdmin):
    list_display = ["environment", "bake_seconds", "when_unreachable"]


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    """Releases are immutable: they can be looked at, not edited."""

    list_display = ["service", "version", "image", "source", "created_at"]
    list_filter = ["service", "source"]


class EventInline(ReadOnlyEventsInline):
    model = DeploymentEvent
    fields = ["seq", "kind", "message", "actor", "created_at"]


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    """Read-only: deployments change only through their state machine."""

    list_display = ["id", "service", "release", "environment", "state", "requested_by", "created_at"]
    list_filter = ["state", "environment", "service"]
    inlines = [EventInline]


class BuildEventInline(ReadOnlyEventsInline):
    model = BuildEvent
    fields = ["seq", "kind", "message", "created_at"]


@admin.register(Build)
class BuildAdmin(ReadOnlyAdmin):
    """Read-only: builds change only through Jenkins (followers and webhooks)."""

    list_display = ["id", "job_name", "number", "service", "state", "result", "trigger", "created_at"]
    list_filter = ["state", "trigger", "service"]
    search_fields = ["job_name", "version"]
    inlines = [BuildEventInline]


class LockAdminForm(forms.ModelForm):
    """The service is picked from the services, not typed: a typo would lock nothing."""

    service_slug = forms.ChoiceField(label="Service", required=False)

    class Meta:
        model = Lock
        fields = ["environment", "service_slug", "reason", "until"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        services = [(s.slug, s.name) for s in Service.objects.order_by("name")]
        self.fields["service_slug"].choices = [("", "All services"), *services]

    def clean_until(self):
        until = self.cleaned_data.get("until")
        start = self.instance.created_at if self.instance.pk else timezone.now()
        if until and until <= start:
            raise forms.ValidationError("The lock must lift after it starts: pick a time to come, or leave it empty.")
        return until


@admin.register(Lock)
class LockAdmin(admin.ModelAdmin):
    form = LockAdminForm
    list_display = ["environment", "service_slug", "reason", "locked_by", "created_at", "until", "released_at"]
    list_filter = ["environment", "released_at"]
    # Who locked, released and when are facts, not settings: they are recorded, not typed in.
    readonly_fields = ["locked_by", "created_at", "released_at", "released_by"]
    actions = ["release"]

    def save_model(self, request, obj, form, change):
        obj.locked_by = obj.locked_by or request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Release the selected locks")
    def release(self, request, queryset):
        for lock in queryset.filter(released_at__isnull=True):
            lock.released_at = timezone.now()
            lock.released_by = request.user
            lock.save(update_fields=["released_at", "released_by"])


@admin.register(SlackAccount)
class SlackAccountAdmin(admin.ModelAdmin):
    """Which Slack member is which portal user, for approvals from Slack."""

    list_display = ["user", "slack_user_id", "team_id", "linked_via", "linked_at"]
    search_fields = ["user__username", "slack_user_id"]
    raw_id_fields = ["user"]
