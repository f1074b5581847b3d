from django.db import migrations, models
from django.utils.text import slugify


def fill_slugs(apps, schema_editor):
    Document = apps.get_model("documents", "Document")
    for document in Document.objects.filter(slug=""):
        document.slug = slugify(document.title)[:220]
        document.save(update_fields=["slug"])


class Migration(migrations.Migration):
    dependencies = [("documents", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="document",
            name="slug",
            field=models.SlugField(blank=True, default="", max_length=220),
        ),
        # Reversing drops the column, so nothing needs undoing in the data step.
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
    ]
