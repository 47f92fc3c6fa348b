"""Django's admin app with our site as its default (config.admin_site), so every `admin.register` lands on the
site that asks approvers for a second factor; ready() adapts django-axes' admin once all admins are loaded."""

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "config.admin_site.CharityAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin module has registered by now
        from config.login_security import adapt_axes_admin

        adapt_axes_admin()
