"""/health/: 200 only when the database answers, Redis answers, the media volume is writable (or the media bucket answers) and no
migration is left unapplied. The deploy's health gate and `edms-ops health` rely on it."""
import os
import tempfile

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


def _redis():
    return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3).ping())


def _media():
    if settings.MEDIA_BACKEND == "s3":
        # A HEAD of one key under the prefix: the bucket answers, with these credentials (a 403 raises).
        from django.core.files.storage import default_storage

        default_storage.exists(".health-probe")
        return True
    with tempfile.NamedTemporaryFile(dir=settings.MEDIA_ROOT, prefix=".health-", delete=True) as probe:
        probe.write(b"ok")
        probe.flush()
    return True


def _migrations():
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} unapplied migration(s)")
    return True


CHECKS = {"database": _database, "redis": _redis, "media": _media, "migrations": _migrations}


def health(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = "ok" if check() else "failed"
        except Exception as exc:  # every failure is reported, not raised
            results[name] = f"failed: {exc.__class__.__name__}: {exc}"
    healthy = all(value == "ok" for value in results.values())
    body = {"status": "ok" if healthy else "failed", "version": settings.EDMS_VERSION, "checks": results}
    return JsonResponse(body, status=200 if healthy else 503)
