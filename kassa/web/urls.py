from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import path

from kassa.web.forms import EmailLoginForm
from kassa.web.views import (
    approvals,
    attention,
    audit_pages,
    credit,
    customers,
    disputes,
    documents,
    frontdesk,
    invoice_refund,
    invoices,
    packages,
    reconciliation,
    reports,
    sales,
    settings_pages,
    verify,
    webhook_pages,
)


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico whatever a page names; the pages name the SVG. Resolved
    per request: the hashed static name exists only once the files are collected."""
    return HttpResponseRedirect(static("web/favicon.svg"))


urlpatterns = [
    path("accounts/login/",
         auth_views.LoginView.as_view(authentication_form=EmailLoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("favicon.ico", favicon),
    *approvals.urlpatterns,
    *attention.urlpatterns,
    *audit_pages.urlpatterns,
    *credit.urlpatterns,
    *customers.urlpatterns,
    *disputes.urlpatterns,
    *documents.urlpatterns,
    *sales.urlpatterns,
    *frontdesk.urlpatterns,
    *invoices.urlpatterns,
    *invoice_refund.urlpatterns,
    *packages.urlpatterns,
    *reconciliation.urlpatterns,
    *reports.urlpatterns,
    *settings_pages.urlpatterns,
    *webhook_pages.urlpatterns,
    *verify.urlpatterns,
]
