from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from kassa.web.forms import EmailLoginForm
from kassa.web.views import (
    attention,
    credit,
    frontdesk,
    invoice_refund,
    invoices,
    packages,
    reports,
    settings_pages,
    webhook_pages,
)

urlpatterns = [
    path("accounts/login/",
         auth_views.LoginView.as_view(authentication_form=EmailLoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    *attention.urlpatterns,
    *credit.urlpatterns,
    *frontdesk.urlpatterns,
    *invoices.urlpatterns,
    *invoice_refund.urlpatterns,
    *packages.urlpatterns,
    *reports.urlpatterns,
    *settings_pages.urlpatterns,
    *webhook_pages.urlpatterns,
]
