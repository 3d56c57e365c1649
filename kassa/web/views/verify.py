"""`/verify/<code>`: anyone holding a document checks it against the books, without signing in.
It shows the organization, the kind, the date and the total, nothing more; a code that is not
a document's is a 404. Rate-limited per client address (Django's cache), so codes cannot be
guessed by trying."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_safe

from kassa.billing import statements
from kassa.core.money import display
from kassa.documents import codes
from kassa.refunds import documents as refund_documents
from kassa.tenancy.models import Organization

WINDOW_SECONDS = 60


def _over_limit(request: HttpRequest) -> bool:
    key = f"kassa-verify:{request.META.get('REMOTE_ADDR', '')}"
    limit = settings.KASSA_VERIFY_PER_MINUTE
    cache.add(key, 0, WINDOW_SECONDS)
    try:
        seen = cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.set(key, 1, WINDOW_SECONDS)
        seen = 1
    return seen > limit


@require_safe
def verify_page(request: HttpRequest, code: str) -> HttpResponse:
    if _over_limit(request):
        limited = render(request, "web/verify_limited.html", status=429)
        limited["Retry-After"] = str(WINDOW_SECONDS)
        return limited
    coded = codes.parse(code)
    found = None
    if coded is not None:
        check = refund_documents.verify if coded.kind == "R" else statements.verify
        found = check(coded, code)
    if coded is None or found is None:
        raise Http404("No document has this code")
    org = Organization.objects.get(pk=coded.organization_id)
    when = coded.as_of.astimezone(zoneinfo.ZoneInfo(org.timezone))
    return render(request, "web/verify.html", {
        "organization": org.name, "kind": codes.KINDS[coded.kind].capitalize(),
        "date": when.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "total": display(found.total_minor, org.currency, org.locale),
        "moved_since": found.moved_since})


urlpatterns = [path("verify/<str:code>", verify_page, name="verify")]
