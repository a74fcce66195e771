from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self):
        from auditlog.registry import auditlog
        from django.contrib.auth.models import Group, User

        # Who holds which role is audited: group memberships and permissions (release admin among
        # them) of people, and the permissions of groups. Passwords and login times are not.
        auditlog.register(User, exclude_fields=["password", "last_login"], m2m_fields={"groups", "user_permissions"})
        auditlog.register(Group, m2m_fields={"permissions"})
