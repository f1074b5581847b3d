"""A deliberately broken release for the failure scenario: the schema change is applied, then the data
step fails, so PostgreSQL rolls the whole migration back and the deploy must stop before any code is
replaced."""
from django.db import migrations, models


def fail(apps, schema_editor):
    raise RuntimeError("deliberately broken migration (sample release 3.0.0-broken)")


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_document_slug")]

    operations = [
        migrations.AddField(model_name="document", name="pages", field=models.IntegerField(default=0)),
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
