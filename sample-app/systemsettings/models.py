from django.db import models


class SystemSetting(models.Model):
    """Key/value system settings that operators change at run time (kept across every update)."""

    key = models.CharField(max_length=100, unique=True)
    value = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.key
