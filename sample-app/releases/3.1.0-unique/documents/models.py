from django.conf import settings
from django.db import models


class Document(models.Model):
    # New in 3.1.0-unique: titles are unique. Fine on fresh data, fails where duplicates exist.
    title = models.CharField(max_length=200, unique=True)
    # New in 2.0.0: filled from the title for existing rows by migration 0002 (reversible).
    slug = models.SlugField(max_length=220, blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="documents")
    file = models.FileField(upload_to="documents/%Y/%m/")
    checksum = models.CharField(max_length=64, blank=True, default="")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    def save(self, *args, **kwargs):
        if not self.slug:
            from django.utils.text import slugify

            self.slug = slugify(self.title)[:220]
        super().save(*args, **kwargs)

    def __str__(self):
        return self.title
