"""`{{ amount_minor|money:organization }}`: money in the organization's currency and locale."""

from __future__ import annotations

from typing import Any

from django import template

from kassa.core.money import display

register = template.Library()


@register.filter
def money(minor: int | None, organization: Any) -> str:
    if minor is None:
        return ""
    return display(int(minor), organization.currency, organization.locale)


@register.filter
def balance(minor: int | None, organization: Any) -> str:
    """A package balance: below zero the guest owes it ("owes $15.20"), never "-$15.20"."""
    if minor is None:
        return ""
    if minor < 0:
        return f"owes {display(-int(minor), organization.currency, organization.locale)}"
    return display(int(minor), organization.currency, organization.locale)


@register.filter
def plain_reason(code: str) -> str:
    """A gateway's failure code as a sentence (kassa.web.reasons)."""
    from kassa.web.reasons import plain_reason as words

    return words(code)
