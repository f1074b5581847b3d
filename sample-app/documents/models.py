from django.conf import settings
from django.db import models


class Document(models.Model):
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="documents")
    file = models.FileField(upload_to="documents/%Y/%m/")
    # sha256 of the file, filled by the celery task `documents.tasks.compute_checksum`.
    checksum = models.CharField(max_length=64, blank=True, default="")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.title
