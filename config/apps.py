from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "config.admin_site.CharityAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin module has registered by now
        from config.login_security import adapt_axes_admin

        adapt_axes_admin()
