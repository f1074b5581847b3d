"""A release whose migration fails only on data that exists: a unique constraint over titles. On an empty or
duplicate-free database it applies; where two documents share a title (production's real data) PostgreSQL
refuses it. The production drill's rehearsal must stop the deploy before production's schema is touched."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_document_slug")]

    operations = [
        migrations.AlterField(model_name="document", name="title", field=models.CharField(max_length=200, unique=True)),
    ]
