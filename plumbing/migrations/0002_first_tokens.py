import secrets

from django.db import migrations

# The scopes of plumbing.fragments when this migration was written (a later one gets its token
# on first read).
SCOPES = ("deployment", "report", "workload", "guard", "build", "catalog", "dora")


def first_tokens(apps, schema_editor):
    Freshness = apps.get_model("plumbing", "Freshness")
    Freshness.objects.bulk_create(
        [Freshness(scope=scope, token=secrets.token_hex(16)) for scope in SCOPES], ignore_conflicts=True
    )


class Migration(migrations.Migration):
    dependencies = [("plumbing", "0001_freshness")]

    operations = [migrations.RunPython(first_tokens, migrations.RunPython.noop)]
