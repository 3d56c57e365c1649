"""The 500 page: the layout's page when it can be drawn, plain words when it cannot.

A 500 may come from what the layout itself needs (a static file's hashed name missing from the
manifest before `collectstatic`, a database that is down), and an error page that raises turns
one error into two; so its rendering is tried, and a page with no template stands behind it.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponseServerError
from django.template.loader import render_to_string

logger = logging.getLogger("kassa.web")

PLAIN = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Something went "
         "wrong · Kassa</title></head><body><h1>Something went wrong on our side</h1><p>Kassa "
         "could not finish this page. If you were making a payment or a refund, open the "
         "invoice before trying again: it shows what was done.</p><p><a href=\"/\">Back to the "
         "front desk</a></p></body></html>")


def server_error(request: HttpRequest) -> HttpResponseServerError:
    try:
        # Without the request, as Django's own handler: nothing of the failed request is used.
        body: str = render_to_string("500.html")
    except Exception:  # whatever broke the page must not break its error page
        logger.warning("the 500 page could not be drawn; answering the plain one", exc_info=True)
        body = PLAIN
    return HttpResponseServerError(body)
