from django.apps import AppConfig


class SystemSettingsConfig(AppConfig):
    name = "systemsettings"
    verbose_name = "System settings"
