from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import extensions

        from . import signals  # noqa: F401  (connects the receivers of vclusters' signals and of worker start-up)
        from .hostclusters.views import team_policy_section

        extensions.add_team_section("provisioning/team_policy_section.html", team_policy_section)
