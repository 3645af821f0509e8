from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluations"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from evaluations import receivers  # connects the receivers

        post_migrate.connect(receivers.roles_after_migrate, sender=self, dispatch_uid="evaluations.roles")

        from django.contrib.auth.signals import user_login_failed

        from evaluations import security  # login throttling: a warning when a login gets locked

        user_login_failed.connect(security.on_login_failed, dispatch_uid="evaluations.login_failed")

        from evaluations.redaction import install_log_masking

        install_log_masking()  # known secrets (services/secrets.py) are masked in every log record
