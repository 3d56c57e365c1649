"""Settings, all from the environment (see README: Configuration).

`DATABASE_URL` picks the database (SQLite by default, so that one command runs the product on a
fresh machine); `EMAIL_URL` the mail server (by default receipts are written as .eml files
under var/mail/); `KASSA_GATEWAY` the payment gateway.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import dj_database_url
import dj_email_url
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("KASSA_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEVELOPMENT_SECRET_KEY = "kassa-insecure-development-key-change-me"
SECRET_KEY = os.environ.get("KASSA_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = os.environ.get("KASSA_DEBUG", "") == "1"

# KASSA_SECURE=1: served over HTTPS behind a proxy that terminates TLS. Cookies go over HTTPS
# only (and never to scripts), browsers are told to use HTTPS for a year (HSTS), plain HTTP is
# redirected, and the proxy's X-Forwarded-Proto says which scheme the client used.
# `python -m django check --deploy` is clean with it; `kassa run` refuses the development key.
KASSA_SECURE = os.environ.get("KASSA_SECURE", "") == "1"
SESSION_COOKIE_HTTPONLY = True
if KASSA_SECURE:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # The health check answers the load balancer over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
ALLOWED_HOSTS = os.environ.get("KASSA_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "csp",
    "ninja",  # the API docs (/api/v1/docs) from its own static files, not a CDN
    "kassa.core",
    "kassa.tenancy",
    "kassa.audit",
    "kassa.webhooks",
    "kassa.ledger",
    "kassa.billing",
    "kassa.gateways",
    "kassa.refunds",
    "kassa.packages",
    "kassa.reports",
    "kassa.web",
]

MIDDLEWARE = [
    "kassa.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "kassa.web.middleware.OrganizationTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "kassa.idempotency.IdempotencyMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Content-Security-Policy (django-csp) on every answer: scripts, styles, images, fonts and
# requests only from Kassa itself — no inline script, no inline event handler (hx-on, onclick),
# no inline <style> or style attribute, no eval; no plugins, no framing, forms post only here.
# The pages keep their behaviour in static files (web/kassa.js) and the API docs are served
# from ninja's own files; the browser tests fail on any violation a page reports.
# `data:` images: the API docs' stylesheet draws its icons as data: URLs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

ROOT_URLCONF = "kassa.urls"
WSGI_APPLICATION = "kassa.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kassa.web.words.words",
            ],
        },
    },
]

# No request waits for a row lock longer than this (PostgreSQL's lock_timeout; SQLite's busy
# timeout): a request that is still running is never mistaken for one that died.
LOCK_WAIT_SECONDS = 20


def database(url: str, *, read_only: bool = False) -> dict[str, Any]:
    """One database alias from its URL, tuned the same way whichever alias it is."""
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=60))
    if config["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with a schema editor that knows the tenant keys
        # (kassa.core.tenant_keys): every PostgreSQL alias, the reports' too.
        config["ENGINE"] = "kassa.core.postgresql"
        options = f"-c lock_timeout={LOCK_WAIT_SECONDS}s"
        if read_only:
            # The database itself refuses a write through this alias, even when the URL
            # names a primary by mistake: "cannot execute INSERT in a read-only transaction".
            options += " -c default_transaction_read_only=on"
        config.setdefault("OPTIONS", {})["options"] = options
        if os.environ.get("KASSA_PG_PREPARE", "1") != "0":
            # Bind parameters on the server and prepare a statement once a connection has run
            # it a few times: the server then plans the money transaction's statements once
            # per connection instead of on every request. KASSA_PG_PREPARE=0 for a pooler in
            # transaction mode (PgBouncer before 1.21), where prepared statements cannot live.
            config["OPTIONS"].update(server_side_binding=True, prepare_threshold=5)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE takes SQLite's write lock at BEGIN, so two money transactions serialise
        # instead of both reading a balance and one failing to upgrade its lock later.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": LOCK_WAIT_SECONDS,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # A file, not :memory:, so that threads and subprocesses in tests see the same
        # database; named after the main one so that two checkouts' suites never share it.
        config["TEST"] = {"NAME": f"{config['NAME']}.test"}
    return config


DATABASES = {
    "default": database(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'kassa.sqlite3'}")),
}
# KASSA_REPORTS_DATABASE_URL: a read-only copy of the default database (a streaming replica)
# that the reports and their CSV exports read from (kassa.reports.selectors); nothing else
# uses it, and nothing writes through it. Unset, the reports read the default database.
# Under tests it is the default's test database (TEST MIRROR): a test run never creates,
# flushes or migrates a database through it.
_reports_url = os.environ.get("KASSA_REPORTS_DATABASE_URL", "")
if _reports_url:
    DATABASES["reports"] = database(_reports_url, read_only=True)
    DATABASES["reports"]["TEST"] = {"MIRROR": "default"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# django-axes first: it refuses a sign-in while its account is locked from that address.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend",
                           "kassa.tenancy.auth.EmailBackend"]
# Sign-in throttling (django-axes): five failures of one account from one address lock that
# pair for 15 minutes (another address, or another account, may still sign in); the locked
# page answers 429. The e-mail is the account, lower-cased as the backend reads it.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = dt.timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "kassa.tenancy.auth.sign_in_name"
AXES_LOCKOUT_TEMPLATE = "web/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
# How often a payment page with a pending refund asks whether it settled (htmx polling).
KASSA_PENDING_POLL_SECONDS = int(os.environ.get("KASSA_PENDING_POLL_SECONDS", "10"))
LOGOUT_REDIRECT_URL = "/accounts/login/?signed_out=1"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Outside DEBUG the pages name hashed copies of the static files (kassa.3f2a….css), collected
# with gzip-compressed twins into STATIC_ROOT and served by WhiteNoise with a far-future cache:
# `kassa run` collects them before it serves; a deployment that starts its own server runs
# `kassa collectstatic --noinput` first (a page would fail on a missing manifest entry).
# In DEBUG, the files straight from the apps' folders. The test suite renders pages without
# collecting (conftest.py switches to the plain storage); the wheel and `kassa run` tests run
# the manifest storage for real.
STATIC_MANIFEST = not DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
                    if STATIC_MANIFEST else
                    "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST

TASKS = {
    "default": {
        "BACKEND": "kassa.core.task_backend.DatabaseBackend",
        # mail: the tasks that send e-mail (outbox.MAIL_QUEUE); webhooks: outgoing webhook
        # deliveries (outbox.WEBHOOK_QUEUE). Each has a thread of its own in `kassa worker`.
        "QUEUES": ["default", "mail", "webhooks"],
    }
}

_email_url = os.environ.get("EMAIL_URL", "")
if _email_url:
    _email = dj_email_url.parse(_email_url)
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _email["EMAIL_HOST"]
    EMAIL_PORT = _email["EMAIL_PORT"]
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
    EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
    # Seconds, for the connection and for each read (smtplib sets it on the socket): a server
    # that accepts and never answers costs a receipt attempt this long, on the mail thread only.
    EMAIL_TIMEOUT = 10
else:
    EMAIL_BACKEND = "kassa.core.mail.EmlFileBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = os.environ.get("KASSA_FROM_EMAIL", "receipts@kassa.localhost")

KASSA_GATEWAY = os.environ.get("KASSA_GATEWAY", "sandbox")
KASSA_SANDBOX_SETTLE_SECONDS = int(os.environ.get("KASSA_SANDBOX_SETTLE_SECONDS", "30"))
# This installation's name in its gateway idempotency keys (default: made once, kept in the
# database); set it on a copy of a database so that the copy never sends the original's keys.
KASSA_INSTALLATION = os.environ.get("KASSA_INSTALLATION", "")
# How many times a refund's gateway call is made before the refund is flagged for a person,
# and the first wait between two (doubling, capped at an hour).
# `kassa verify` checks this many objects per query (its --batch-size): memory stays flat.
KASSA_VERIFY_BATCH = 10000
# ... and runs this many checks at once, each on its own connection (PostgreSQL; 1: one after
# the other).
KASSA_VERIFY_JOBS = max(1, min(64, int(os.environ.get("KASSA_VERIFY_JOBS", "2"))))
KASSA_GATEWAY_ATTEMPTS = max(1, int(os.environ.get("KASSA_GATEWAY_ATTEMPTS", "8")))
KASSA_GATEWAY_BACKOFF_SECONDS = max(
    1, int(os.environ.get("KASSA_GATEWAY_BACKOFF_SECONDS", "10")))
# A request that claimed an Idempotency-Key and has not answered after this long died: a retry
# with the key may take it over, on the paths whose services resume what it left (under the
# same locks, so that even a first run still alive cannot make the effect twice).
KASSA_IDEMPOTENCY_TAKEOVER_SECONDS = max(
    1, int(os.environ.get("KASSA_IDEMPOTENCY_TAKEOVER_SECONDS", "60")))
# How long a process keeps what an API token names (its person, role and organization)
# without asking the database again: so long, at most, a token revoked, a person deactivated
# or a role changed by *another* process goes on working here (a change made through this
# process is seen at once). 0 asks on every request.
KASSA_TOKEN_CACHE_SECONDS = max(0.0, float(os.environ.get("KASSA_TOKEN_CACHE_SECONDS", "5")))
# How many document checks (/verify/<code>) one client address may make a minute.
KASSA_VERIFY_PER_MINUTE = max(1, int(os.environ.get("KASSA_VERIFY_PER_MINUTE", "30")))
# Outgoing webhooks go only to URLs whose host resolves to public addresses; 1 lets them go to
# loopback and private ones too (a receiver inside the network on purpose, a test's own).
KASSA_WEBHOOKS_ALLOW_PRIVATE = os.environ.get("KASSA_WEBHOOKS_ALLOW_PRIVATE", "") == "1"
STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")

# JSON lines on stderr, each with the request's id (kassa.logs); Django's own errors (every
# 500, with its traceback) through the same handler. KASSA_LOG_LEVEL tunes Kassa's loggers.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "kassa.logs.RequestIdFilter"}},
    "formatters": {"json": {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
    }},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                             "filters": ["request_id"]}},
    "loggers": {
        "kassa": {"handlers": ["console"], "level": os.environ.get("KASSA_LOG_LEVEL", "INFO")},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# SENTRY_DSN: report errors (every 500, with its traceback and the request's id as the tag
# `request_id`) to Sentry, without personal data (kassa/sentry.py). Unset: nothing is loaded.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    from kassa.sentry import start as _start_sentry

    _start_sentry(dsn=SENTRY_DSN, environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
                  release=os.environ.get("SENTRY_RELEASE", ""))
