from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self):
        from auditlog.registry import auditlog
        from django.contrib.auth.models import Group, User

        from clusters.apps import own_fields

        # Who holds which role is audited: group memberships and permissions (release admin among
        # them) of people, and the permissions of groups. Passwords and login times are not, and
        # reverse relations ("approvals", "api_tokens") and ids are noise in the trail.
        auditlog.register(
            User,
            include_fields=own_fields(User, "password", "last_login"),
            m2m_fields={"groups", "user_permissions"},
        )
        auditlog.register(Group, include_fields=own_fields(Group), m2m_fields={"permissions"})

        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save

        from portal import access

        user_logged_out.connect(access.close_session_sockets, dispatch_uid="pampam-close-session-sockets")
        post_save.connect(access.close_user_sockets, sender=User, dispatch_uid="pampam-close-user-sockets")
        post_delete.connect(access.close_user_sockets, sender=User, dispatch_uid="pampam-close-deleted-user-sockets")
