"""Admin for API tokens (look, revoke; never made here, since a token is shown only once) and
service accounts (flag a user as a robot)."""

from django.contrib import admin, messages

from releases.api.models import ApiToken, ServiceAccount


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = [f.name for f in ApiToken._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        revoked = sum(token.revoke() for token in queryset)
        messages.success(request, f"Revoked {revoked} token(s).")


@admin.register(ServiceAccount)
class ServiceAccountAdmin(admin.ModelAdmin):
    list_display = ["user", "description", "created_by", "created_at"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            obj.user.set_unusable_password()
            obj.user.save(update_fields=["password"])
        super().save_model(request, obj, form, change)
