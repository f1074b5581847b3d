import hashlib

from celery import shared_task
from django.utils import timezone

from .models import Document


@shared_task
def compute_checksum(document_id):
    document = Document.objects.get(pk=document_id)
    digest = hashlib.sha256()
    with document.file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    document.checksum = digest.hexdigest()
    document.processed_at = timezone.now()
    document.save(update_fields=["checksum", "processed_at"])
    return document.checksum
