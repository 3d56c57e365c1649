"""The words of the trade (DESIGN.md, "The front desk's own words"): the organization's
`business_kind` chooses what the pages call a customer — a funeral home's *family* with its
*cases* (named for the decedent), a spa's *guest* with *packages*.

Templates read them as `{{ words.customer }}`, `{{ words.Customers }}` and so on (the context
processor below); views and e-mails call `words_for(organization)`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

WORDS: dict[str, dict[str, str]] = {
    "spa": {
        "customer": "guest", "customers": "guests", "Customer": "Guest", "Customers": "Guests",
        "case": "case", "Case": "Case", "cases": "cases", "Cases": "Cases",
        "case_name": "Case name", "funeral_home": "",
    },
    "funeral_home": {
        "customer": "family", "customers": "families", "Customer": "Family",
        "Customers": "Families",
        "case": "case", "Case": "Case", "cases": "cases", "Cases": "Cases",
        "case_name": "Decedent's name", "funeral_home": "yes",
    },
}


def words_for(organization: Any) -> dict[str, str]:
    return WORDS.get(getattr(organization, "business_kind", "spa"), WORDS["spa"])


def words(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the signed-in organization's words (a spa's without one)."""
    membership = getattr(request, "membership", None)
    return {"words": words_for(membership.organization if membership else None)}
