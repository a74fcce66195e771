from django import forms
from django.contrib import admin
from django.db import models
from django.utils import timezone

from clusters.models import Cluster, Environment, FreezeWindow, Workload


class SecretForm(forms.ModelForm):
    """A form with a write-only secret: never rendered back, kept when left empty, removed with
    its `clear_` box. `secret` names the form field and the model property it sets."""

    secret: tuple[str, str]

    def save(self, commit=True):
        row = super().save(commit=False)
        field, attribute = self.secret
        if self.cleaned_data.get(f"clear_{field}"):
            setattr(row, attribute, "")
        elif self.cleaned_data.get(field):
            setattr(row, attribute, self.cleaned_data[field])
        if commit:
            row.save()
            self.save_m2m()
        return row


class ClusterForm(SecretForm):
    """The cluster's bearer token is a secret."""

    secret = ("token", "token")

    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Bearer token of a service account. Leave empty to keep the stored one.",
    )
    clear_token = forms.BooleanField(required=False, help_text="Remove the stored token.")

    class Meta:
        model = Cluster
        fields = ["name", "api_url", "in_cluster", "ca_cert", "insecure_skip_tls_verify"]

    def clean(self):
        data = super().clean()
        if not data.get("in_cluster") and not data.get("api_url"):
            self.add_error("api_url", "Give the API URL, or tick in-cluster.")
        return data


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterForm
    list_display = ["name", "api_url", "in_cluster", "has_token"]

    @admin.display(boolean=True, description="token stored")
    def has_token(self, obj):
        return obj.has_token


class FreezeInline(admin.TabularInline):
    model = FreezeWindow
    extra = 0
    fields = ["starts_at", "ends_at", "reason"]


class EnvironmentForm(SecretForm):
    """The Slack webhook URL is a secret, like a cluster token."""

    secret = ("slack_webhook", "slack_webhook_url")

    slack_webhook = forms.URLField(
        label="Slack webhook URL",
        required=False,
        assume_scheme="https",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Incoming webhook for this environment's messages (empty: the global SLACK_WEBHOOK_URL). "
        "Leave empty to keep the stored one.",
    )
    clear_slack_webhook = forms.BooleanField(required=False, help_text="Remove the stored Slack webhook URL.")

    class Meta:
        model = Environment
        # Every editable field, so a field added later shows up in the admin; the encrypted
        # column is not editable and so never rendered.
        fields = "__all__"  # noqa: DJ007

    def clean_slack_webhook(self):
        value = self.cleaned_data.get("slack_webhook", "")
        if value and not value.startswith(("https://", "http://")):
            raise forms.ValidationError("Give an http(s) URL.")
        return value


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    """An environment with deployments owns their history: it can be archived (hidden from the
    dashboard, closed to deployments), not deleted (Deployment.environment is PROTECT)."""

    form = EnvironmentForm

    list_display = [
        "name",
        "position",
        "cluster",
        "namespace",
        "required_approvals",
        "deploy_via",
        "is_production",
        "has_slack_webhook",
        "archived",
    ]
    list_editable = ["position"]
    list_filter = [("archived_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["archived_at"]
    inlines = [FreezeInline]
    actions = ["archive", "restore"]

    @admin.display(boolean=True, description="archived")
    def archived(self, obj):
        return obj.archived

    def get_deleted_objects(self, objs, request):
        """Say how much history an environment keeps, without listing (and loading) every
        deployment of it as Django's confirmation page would; the page offers archiving instead."""
        kept = [f"{environment.name}: {', '.join(held)}" for environment in objs if (held := history_of(environment))]
        if kept:
            return [], {}, set(), kept
        return super().get_deleted_objects(objs, request)

    @admin.action(description="Archive the selected environments (hide them, keep their history)")
    def archive(self, request, queryset):
        for environment in queryset.filter(archived_at__isnull=True):
            environment.archived_at = timezone.now()
            environment.save(update_fields=["archived_at"])  # one audited save each
        self.message_user(request, "Archived: hidden from the dashboard and closed to deployments.")

    @admin.action(description="Restore the selected environments from the archive")
    def restore(self, request, queryset):
        for environment in queryset.filter(archived_at__isnull=False):
            environment.archived_at = None
            environment.save(update_fields=["archived_at"])

    @admin.display(boolean=True, description="own Slack webhook")
    def has_slack_webhook(self, obj):
        return obj.has_slack_webhook


@admin.register(FreezeWindow)
class FreezeWindowAdmin(admin.ModelAdmin):
    list_display = ["environment", "starts_at", "ends_at", "reason", "created_by"]
    list_filter = ["environment"]
    exclude = ["created_by"]

    def save_model(self, request, obj, form, change):
        obj.created_by = obj.created_by or request.user
        super().save_model(request, obj, form, change)


@admin.register(Workload)
class WorkloadAdmin(admin.ModelAdmin):
    list_display = ["environment", "name", "image", "replicas", "ready", "available", "observed_at"]
    readonly_fields = [f.name for f in Workload._meta.fields]

    def has_add_permission(self, request):
        return False


def history_of(environment) -> list[str]:
    """What keeps `environment` from being deleted: rows that protect it ("12 deployments"),
    whatever app they belong to."""
    held = []
    for relation in environment._meta.related_objects:
        if relation.on_delete is not models.PROTECT:
            continue
        count = relation.related_model._default_manager.filter(**{relation.field.name: environment}).count()
        if count:
            names = relation.related_model._meta
            held.append(f"{count} {names.verbose_name if count == 1 else names.verbose_name_plural}")
    return held
