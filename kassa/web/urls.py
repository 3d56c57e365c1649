from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from kassa.web.forms import EmailLoginForm
from kassa.web.views import (
    attention,
    customers,
    frontdesk,
    invoices,
    packages,
    reports,
    sales,
    settings_pages,
)

urlpatterns = [
    path("accounts/login/",
         auth_views.LoginView.as_view(authentication_form=EmailLoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    *attention.urlpatterns,
    *customers.urlpatterns,
    *sales.urlpatterns,
    *frontdesk.urlpatterns,
    *invoices.urlpatterns,
    *packages.urlpatterns,
    *reports.urlpatterns,
    *settings_pages.urlpatterns,
]
