from django.contrib import admin

from .models import SystemSetting

admin.site.register(SystemSetting)
