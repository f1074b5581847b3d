from django.contrib import admin
from django.urls import path

from . import health

urlpatterns = [
    path("health/", health.health),
    path("admin/", admin.site.urls),
]
