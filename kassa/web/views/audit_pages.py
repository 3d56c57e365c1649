"""`/audit/`: the audit log for admins and accountants, newest first, fifty a page, filtered by
object ("refund:12" or "refund") as the API filters it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_safe

from kassa.audit import selectors
from kassa.tenancy.models import Membership
from kassa.tenancy.services import require_auditor
from kassa.web.access import page

PER_PAGE = 50


@require_safe
@page
def audit_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    require_auditor(membership)  # a 403 page for anyone else (kassa.web.access)
    wanted = request.GET.get("object", "").strip()[:64]
    try:
        number = max(1, min(int(request.GET.get("page", "1")), 100_000))
    except ValueError:
        number = 1
    found = selectors.entries(membership.organization_id, object=wanted or None)
    start = (number - 1) * PER_PAGE
    rows = list(found[start: start + PER_PAGE + 1])
    users = {m.user_id: m.user.email
             for m in membership.organization.memberships.select_related("user")}
    return render(request, "web/audit.html", {
        "rows": [(e, users.get(e.actor_id, f"user {e.actor_id}") if e.actor_id else "Kassa")
                 for e in rows[:PER_PAGE]],
        "object": wanted, "page": number, "more": len(rows) > PER_PAGE})


urlpatterns = [path("audit/", audit_page, name="audit")]
