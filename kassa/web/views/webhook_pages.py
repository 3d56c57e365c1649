"""Webhook endpoints on the settings page (admins only): the list, *Add endpoint* — whose
answer is the one page that ever shows the new secret — and *Remove*.

The add form posts here and calls the one service (add_endpoint); the page that answers a
success is rendered, not redirected to, so the secret is never in a URL, a session or a
message store, and reloading the settings page does not show it again. A refusal (a URL that
is not http(s) or resolves to a private address, no event type chosen) is shown beside its
field on the form's own page, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from kassa.core.errors import DomainError
from kassa.tenancy.models import Membership
from kassa.web.access import admin_page
from kassa.web.forms import show_error
from kassa.webhooks.models import EventType
from kassa.webhooks.selectors import endpoints
from kassa.webhooks.services import add_endpoint, remove_endpoint


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(label="Endpoint URL", max_length=2000,
                          help_text="https://… on a public address; Kassa POSTs each event here.",
                          widget=forms.URLInput(attrs={"autocomplete": "off"}))
    events = forms.MultipleChoiceField(label="Events to send",
                                       choices=[(t, t) for t in EventType.values],
                                       widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def webhook_context(membership: Membership) -> dict[str, Any]:
    """What the settings page shows of the webhooks (it is an admin's page already)."""
    return {"webhook_endpoints": list(endpoints(membership)),
            "webhook_form": WebhookEndpointForm()}


@admin_page
@require_POST
def add_endpoint_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = WebhookEndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoint, secret = add_endpoint(actor=membership, url=form.cleaned_data["url"],
                                            events=form.cleaned_data["events"])
        except DomainError as error:
            show_error(form, error)
        else:
            response = render(request, "web/webhook_endpoint_added.html",
                              {"endpoint": endpoint, "secret": secret})
            response["Cache-Control"] = "no-store"  # the secret stays out of every cache
            return response
    return render(request, "web/webhook_endpoint_form.html", {"webhook_form": form}, status=422)


@admin_page
@require_POST
def remove_endpoint_page(request: HttpRequest, membership: Membership,
                         endpoint_id: str) -> HttpResponse:
    remove_endpoint(actor=membership, endpoint=endpoint_id)
    messages.success(request, "Webhook endpoint removed.")
    return redirect("settings")


urlpatterns = [
    path("settings/webhooks/", add_endpoint_page, name="settings_add_webhook"),
    path("settings/webhooks/<str:endpoint_id>/remove/", remove_endpoint_page,
         name="settings_remove_webhook"),
]
