"""Forms of the front desk. They parse and label input; the rules stay in the services, whose
DomainError `show_error` puts next to the field it names."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from kassa.core.errors import DomainError


class EmailLoginForm(AuthenticationForm):
    username = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True}))


def show_error(form: forms.Form, error: DomainError, *, fields: dict[str, str] | None = None
               ) -> None:
    """Attach a service's error to the form: beside its field when the form has one (names may
    be mapped, e.g. the API's `refund_to.method` to the form's `method`), else on top."""
    name = error.field or ""
    name = (fields or {}).get(name, name)
    message = getattr(error, "message", None) or error.detail
    if name in form.fields:
        form.add_error(name, message)
    else:
        form.add_error(None, message)
