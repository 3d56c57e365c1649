from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from kassa.api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("", include("kassa.web.urls")),
]
