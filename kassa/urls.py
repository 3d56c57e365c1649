from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt

from kassa.api import api
from kassa.health import healthz
from kassa.problems import problem


@csrf_exempt  # the API has no cookies to protect: a POST here is a 404 too, not a CSRF page
def api_path_not_found(request: HttpRequest, rest: str) -> HttpResponse:
    """An address under the API that names no operation: a problem document like every other
    API error, not Django's HTML page."""
    return problem(404, "not_found", "Not found", f"No API operation at /api/v1/{rest}")


handler500 = "kassa.web.views.errors.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", api_path_not_found),
    path("admin/", admin.site.urls),
    path("", include("kassa.web.urls")),
]
