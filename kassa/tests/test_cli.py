"""`kassa` as a process, the way an operator runs it, against the test database.

The tests are transactional (`transaction=True`): what the API or the test writes is committed,
so that the `kassa` process, with its own connection, sees it — and what `kassa` writes is seen
here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import Client

from kassa.billing.models import Invoice, Payment
from kassa.tenancy.models import ApiToken, Membership, Organization

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the database this test runs against (pytest-django's test database)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{db.get('HOST') or ''}:{db.get('PORT') or 5432}/{db['NAME']}"


def kassa(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("kassa")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "kassa.cli"]
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "kassa.settings"}
    done = subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    if check:
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done


def one_json_object(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


def api(token: str, method: str, path: str, body: Any = None) -> Any:
    client = Client()
    headers = {"Authorization": f"Bearer {token}"}
    if method == "get":
        return client.get(f"/api/v1{path}", headers=headers)
    return client.post(f"/api/v1{path}", json.dumps(body), content_type="application/json",
                       headers=headers)


def test_help_lists_every_command():
    done = kassa("--help")
    for command in ("run", "migrate", "worker", "org", "user", "sandbox", "verify", "demo"):
        assert f"\n    {command} " in done.stdout or f"\n    {command}\n" in done.stdout, command


def test_org_create_prints_the_admin_and_a_token_that_works():
    done = kassa("org", "create", "--name", "Evergreen Funeral Home", "--currency", "usd",
                 "--timezone", "America/Chicago", "--admin-email", "Director@Evergreen.example")
    out = one_json_object(done)
    assert set(out) == {"organization", "admin"}
    assert set(out["admin"]) == {"id", "email", "token"}
    org = Organization.objects.get(pk=out["organization"])
    assert (org.name, org.currency, org.timezone) == ("Evergreen Funeral Home", "USD",
                                                      "America/Chicago")
    admin = Membership.objects.get(organization=org)
    assert (str(admin.user_id), admin.user.email, admin.role) == (
        out["admin"]["id"], "director@evergreen.example", "admin")
    assert out["admin"]["email"] == "director@evergreen.example"
    # the token is shown once and stored only as its digest; it works against the API
    token = out["admin"]["token"]
    assert not ApiToken.objects.filter(digest=token).exists()
    r = api(token, "get", "/settings")
    assert r.status_code == 200 and r.json()["timezone"] == "America/Chicago"
    assert api(token, "post", "/customers", {"name": "Ann", "email": "a@example.com"}
               ).status_code == 201


def test_org_create_with_a_password_lets_the_admin_sign_in():
    out = one_json_object(kassa("org", "create", "--name", "Spa", "--admin-email",
                                "owner@spa.example", "--admin-password", "s3cret-pass"))
    membership = Membership.objects.get(organization_id=out["organization"])
    # hashed by the process with the product's own hasher, not the tests' fast one
    encoded = membership.user.password
    assert encoded.startswith("pbkdf2_sha256$")
    assert PBKDF2PasswordHasher().verify("s3cret-pass", encoded)
    assert not PBKDF2PasswordHasher().verify("wrong-pass", encoded)


@pytest.mark.parametrize(("args", "message"), [
    (["--currency", "ABC"], "currency"),
    (["--timezone", "Mars/Olympus"], "time zone"),
    (["--admin-email", "not-an-email"], "e-mail"),
])
def test_org_create_refuses_bad_input_and_writes_nothing(args, message):
    base = {"--name": "Spa", "--admin-email": "owner@spa.example"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    done = kassa("org", "create", *[x for kv in base.items() for x in kv], check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert message in done.stderr
    assert Organization.objects.count() == 0 and Membership.objects.count() == 0


def test_user_create_adds_a_person_with_a_role_and_a_token():
    org = one_json_object(kassa("org", "create", "--name", "Spa", "--admin-email",
                                "owner@spa.example"))["organization"]
    tokens = {}
    for role in ("front_desk", "accountant"):
        out = one_json_object(kassa("user", "create", "--org", org, "--email",
                                    f"{role}@spa.example", "--role", role))
        assert set(out) == {"id", "email", "role", "token"}
        assert (out["email"], out["role"]) == (f"{role}@spa.example", role)
        membership = Membership.objects.get(user_id=out["id"])
        assert (str(membership.organization_id), membership.role) == (org, role)
        tokens[role] = out["token"]
    new_guest = {"name": "Ann", "email": "a@example.com"}
    assert api(tokens["front_desk"], "post", "/customers", new_guest).status_code == 201
    # the accountant's token reads but may not write
    assert api(tokens["accountant"], "get", "/customers").status_code == 200
    assert api(tokens["accountant"], "post", "/customers", new_guest).status_code == 403


def test_user_create_refuses_an_unknown_organization_a_taken_email_and_a_bad_role():
    org = one_json_object(kassa("org", "create", "--name", "Spa", "--admin-email",
                                "owner@spa.example"))["organization"]
    users = Membership.objects.count()
    for args in (["--org", "424242", "--email", "x@spa.example", "--role", "admin"],
                 ["--org", "²", "--email", "x@spa.example", "--role", "admin"],
                 ["--org", org, "--email", "OWNER@spa.example", "--role", "admin"],
                 ["--org", org, "--email", "bad email", "--role", "admin"]):
        done = kassa("user", "create", *args, check=False)
        assert done.returncode == 2 and done.stdout == "", (args, done)
        assert done.stderr.startswith("kassa: ")
    done = kassa("user", "create", "--org", org, "--email", "x@spa.example", "--role", "owner",
                 check=False)
    assert done.returncode == 2 and "invalid choice" in done.stderr
    assert Membership.objects.count() == users


def books_with_money() -> tuple[str, dict[str, Any], dict[str, Any]]:
    out = one_json_object(kassa("org", "create", "--name", "Spa", "--admin-email",
                                "owner@spa.example"))
    token = out["admin"]["token"]
    customer = api(token, "post", "/customers", {"name": "Ann", "email": "a@example.com"}).json()
    center = api(token, "get", "/centers").json()[0]["id"]
    invoice = api(token, "post", "/invoices", {
        "customer": customer["id"], "center": center,
        "lines": [{"kind": "service", "description": "Facial", "unit_price": "100.00",
                   "tax_rate": "8.875"}]}).json()
    payment = api(token, "post", f"/invoices/{invoice['id']}/payments",
                  {"amount": "50.00", "method": "card", "online": True}).json()
    return out["organization"], invoice, payment


def test_verify_passes_on_clean_books_and_names_an_invoice_whose_figures_were_corrupted():
    org, invoice, _ = books_with_money()
    done = kassa("verify")
    assert done.stdout == "the books balance and every figure agrees with the ledger\n"
    # A "lost" cent: paid and balance due moved together, so the row's own CHECK (balance due
    # = total - credits - paid + refunded) still holds and only the ledger can tell.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_invoice SET paid_minor = paid_minor - 1, "
                       "balance_due_minor = balance_due_minor + 1 WHERE id = %s",
                       [invoice["id"]])
    done = kassa("verify", check=False)
    assert done.returncode == 1, done
    name = f"invoice {invoice['number']} (id {invoice['id']})"
    assert f"{name}: balance_due is 5889, the receivable sub-ledger says 5888" in done.stdout
    assert f"{name}: paid is 4999, the ledger says 5000" in done.stdout
    assert "2 discrepancies" in done.stdout
    assert kassa("verify", "--org", org, check=False).returncode == 1


def test_verify_names_a_payment_whose_amount_was_corrupted():
    _, _, payment = books_with_money()
    Payment.objects.filter(pk=payment["id"]).update(amount_minor=5100)
    done = kassa("verify", check=False)
    assert done.returncode == 1
    assert f"payment {payment['id']}: amount is 5100, the ledger says 5000" in done.stdout


def test_verify_since_a_day_checks_what_moved_and_says_how_much_in_batches_of_two():
    _, invoice, _ = books_with_money()
    day = Invoice.objects.get(pk=invoice["id"]).created_at.date().isoformat()
    done = kassa("verify", "--since", "2000-01-01", "--batch-size", "2")
    assert done.stdout.endswith("the books balance and every figure agrees with the ledger\n")
    assert "checked what moved since 2000-01-01: " in done.stdout
    assert "1 invoices, 1 payments" in done.stdout
    Invoice.objects.filter(pk=invoice["id"]).update(paid_minor=4999, balance_due_minor=5889)
    done = kassa("verify", "--since", day, "--batch-size", "1", check=False)
    assert done.returncode == 1
    assert "paid is 4999, the ledger says 5000" in done.stdout
    assert done.stdout.endswith("2 discrepancies\n")
    # Nothing moved after 2999: nothing is checked, and the output says so.
    done = kassa("verify", "--since", "2999-01-01")
    assert "checked what moved since 2999-01-01: nothing" in done.stdout
    for bad in (["--since", "yesterday"], ["--batch-size", "0"]):
        assert kassa("verify", *bad, check=False).returncode == 2


def test_verify_checks_only_the_organization_asked_for():
    org, invoice, _ = books_with_money()
    clean = one_json_object(kassa("org", "create", "--name", "Clean", "--admin-email",
                                  "c@clean.example"))["organization"]
    Invoice.objects.filter(pk=invoice["id"]).update(status="closed")
    done = kassa("verify", check=False)
    assert done.returncode == 1
    assert f"organization {org}: invoice {invoice['number']}" in done.stdout
    assert "status is closed" in done.stdout
    kassa("verify", "--org", clean)
    for unknown in ("424242", "x"):
        done = kassa("verify", "--org", unknown, check=False)
        assert done.returncode == 2 and done.stderr == f"kassa: no organization {unknown}\n"


def test_a_database_that_is_not_migrated_is_an_error_message_not_a_traceback(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    script = Path(sys.executable).with_name("kassa")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "kassa.cli"]
    done = subprocess.run([*command, "verify"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("kassa: the database is not ready") and "Traceback" not in \
        done.stderr
    assert "kassa migrate" in done.stderr


def test_demo_loads_and_its_books_verify():
    out = one_json_object(kassa("demo"))
    assert len(out["organizations"]) == 2 and out["sign_in"]["email"]
    for org in out["organizations"]:
        r = api(org["admin_token"], "get", "/invoices")
        assert r.status_code == 200 and r.json(), org["name"]
    assert Invoice.objects.count() >= 4 and Payment.objects.count() >= 4
    kassa("verify")
    # twice is refused, not a traceback, and writes nothing
    organizations = Organization.objects.count()
    again = kassa("demo", check=False)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.startswith("kassa: the demo cannot load here")
    assert Organization.objects.count() == organizations


def test_other_commands_are_djangos_and_an_unknown_one_lists_the_commands():
    done = kassa("check")  # Django's system check, through kassa
    assert "System check identified no issues" in done.stdout
    sessions = kassa("clearsessions")
    assert sessions.returncode == 0
    unknown = kassa("refnud", check=False)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "unknown command 'refnud'" in unknown.stderr
    assert "run, migrate, worker" in unknown.stderr


def test_python_dash_m_kassa_is_the_kassa_command():
    done = subprocess.run([sys.executable, "-m", "kassa", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0 and "verify" in done.stdout and "sandbox" in done.stdout
