from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from kassa.web import views
from kassa.web.forms import EmailLoginForm

urlpatterns = [
    path("accounts/login/",
         auth_views.LoginView.as_view(authentication_form=EmailLoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.front_desk, name="front_desk"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice"),
    path("payments/<int:payment_id>/", views.payment_detail, name="payment"),
]
