from django.contrib import admin

from releases.models import Build, BuildEvent, Deployment, DeploymentEvent, Release, Service


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "github_repo", "jenkins_build_job", "k8s_deployment"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    """Releases are immutable: they can be looked at, not edited."""

    list_display = ["service", "version", "image", "source", "created_at"]
    list_filter = ["service", "source"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


class EventInline(admin.TabularInline):
    model = DeploymentEvent
    extra = 0
    can_delete = False
    fields = ["seq", "kind", "message", "actor", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    """Read-only: deployments change only through their state machine."""

    list_display = ["id", "service", "release", "environment", "state", "requested_by", "created_at"]
    list_filter = ["state", "environment", "service"]
    inlines = [EventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


class BuildEventInline(admin.TabularInline):
    model = BuildEvent
    extra = 0
    can_delete = False
    fields = ["seq", "kind", "message", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Build)
class BuildAdmin(admin.ModelAdmin):
    """Read-only: builds change only through Jenkins (followers and webhooks)."""

    list_display = ["id", "job_name", "number", "service", "state", "result", "trigger", "created_at"]
    list_filter = ["state", "trigger", "service"]
    search_fields = ["job_name", "version"]
    inlines = [BuildEventInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
