"""The HTTPS path: Kassa connects to the address it checked, yet verifies the certificate
against the URL's host name (SNI and all). A receiver with a certificate Kassa does not trust
gets nothing; one it trusts gets the event."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import run_tasks
from kassa.webhooks import delivery as delivering
from kassa.webhooks.models import WebhookDelivery
from kassa.webhooks.tests.receiver import add_endpoint, receiver, verify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_allowed")]


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def refund(tenant):
    payment = tenant.pay(tenant.invoice()["id"], "100.00")
    r = tenant.api.post(f"/payments/{payment['id']}/refunds", {
        "type": "offline", "method": "cash", "amount": "5.00", "reason": "x"})
    assert r.status_code == 201, r.content


def test_https_is_verified_against_the_urls_host(tenant, tmp_path, monkeypatch):
    cert_file, key_file = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    with receiver(tls=server_context) as hook:
        url = f"https://localhost:{hook.port}/hooks"
        endpoint = add_endpoint(tenant.api, url, ["refund.created"])

        refund(tenant)  # a certificate nobody vouches for: refused
        run_tasks()
        [refused] = WebhookDelivery.objects.all()
        assert refused.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in refused.last_error
        assert hook.requests == []

        trusting = ssl.create_default_context

        def with_test_ca() -> ssl.SSLContext:
            context = trusting()
            context.load_verify_locations(cert_file)
            return context

        monkeypatch.setattr(delivering.ssl, "create_default_context", with_test_ca)
        WebhookDelivery.objects.all().delete()
        refund(tenant)
        run_tasks()
        [delivered] = WebhookDelivery.objects.all()
        assert delivered.status == "delivered", delivered.last_error
    [request] = hook.requests
    assert request.headers["Host"] == f"localhost:{hook.port}"
    assert verify(endpoint["secret"], request.headers["Kassa-Signature"], request.body)
    assert threading.active_count() < 50  # no watchdog left behind
