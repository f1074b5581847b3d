"""Settings of the sample EDMS. Every secret is read from a file named by a *_FILE variable, so no secret
ever sits in a container's environment (`docker inspect`)."""
import os
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent


def read_secret(name):
    path = os.environ.get(f"{name}_FILE")
    if not path:
        raise RuntimeError(f"{name}_FILE is not set: point it at the file that holds {name}")
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


SECRET_KEY = read_secret("DJANGO_SECRET_KEY")
DEBUG = False
# From the stack's `edms:django.allowedHosts` (required on production); every host when the stack names none.
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",") if h.strip()]
EDMS_VERSION = os.environ.get("EDMS_VERSION", "unknown")
EDMS_ENVIRONMENT = os.environ.get("EDMS_ENVIRONMENT", "dev")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "documents",
    "systemsettings",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "edms.urls"
WSGI_APPLICATION = "edms.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("POSTGRES_HOST", "postgres"),
        "NAME": os.environ.get("POSTGRES_DB", "edms"),
        "USER": os.environ.get("POSTGRES_USER", "edms"),
        "PASSWORD": read_secret("POSTGRES_PASSWORD"),
        "CONN_MAX_AGE": 60,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_url():
    """REDIS_URL with the password of REDIS_PASSWORD_FILE (when set) added here, never in the environment."""
    url = os.environ.get("REDIS_URL", "redis://redis:6379/0")
    if not os.environ.get("REDIS_PASSWORD_FILE"):
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://:{quote(read_secret('REDIS_PASSWORD'), safe='')}@{rest}"


REDIS_URL = redis_url()
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", "/srv/media")
MEDIA_URL = "/media/"
# Media in an S3-compatible bucket (`edms:media`, backend s3): django-storages' S3 backend, every key under the
# stack's prefix. The keys are read by boto3 from the file AWS_SHARED_CREDENTIALS_FILE names, never from the
# environment; a private CA (EDMS_S3_CA_FILE) is what TLS to the endpoint is checked against.
MEDIA_BACKEND = os.environ.get("EDMS_MEDIA_BACKEND", "volume")
if MEDIA_BACKEND == "s3":
    DEFAULT_FILE_STORAGE = "storages.backends.s3boto3.S3Boto3Storage"
    AWS_STORAGE_BUCKET_NAME = os.environ["EDMS_S3_BUCKET"]
    AWS_S3_ENDPOINT_URL = os.environ["EDMS_S3_ENDPOINT"]
    AWS_S3_REGION_NAME = os.environ.get("EDMS_S3_REGION", "us-east-1")
    AWS_LOCATION = os.environ.get("EDMS_S3_PREFIX", "").strip("/")
    AWS_S3_ADDRESSING_STYLE = "path"
    AWS_S3_FILE_OVERWRITE = False
    AWS_DEFAULT_ACL = None
    AWS_S3_VERIFY = os.environ.get("EDMS_S3_CA_FILE") or True
STATIC_URL = "/static/"
USE_TZ = True
TIME_ZONE = "UTC"

# Deployment hardening. EDMS_HTTPS=1 is set by edms-deploy when the stack serves HTTPS (`edms:proxy.tls`, or
# `edms:tlsUpstream`): cookies are then sent over HTTPS only, and X-Forwarded-Proto, set by the proxy's TLS
# frontend or by the TLS-terminating upstream (nothing else reaches the app), says a request was secure.
# `manage.py check --deploy` passes with it but for security.W008: the redirect to HTTPS is the edge's (the
# proxy's plain port only redirects; an upstream does its own), as a Django redirect would loop behind an
# upstream that does not set the header and would redirect the stack's own probes of gunicorn's plain port.
# Without it (dev, staging on plain HTTP) the cookie and HSTS checks cannot hold and are silenced too:
# security.W004 (HSTS), W012 (secure session cookie), W016 (secure CSRF cookie).
HTTPS = os.environ.get("EDMS_HTTPS") == "1"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SILENCED_SYSTEM_CHECKS = ["security.W008"] + ([] if HTTPS else ["security.W004", "security.W012", "security.W016"])

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
