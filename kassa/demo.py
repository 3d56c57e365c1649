"""The demo: a funeral home and a spa with real-looking money, so `make run` shows something.

Built through the same services as the API, so the demo's books pass `kassa verify`.
"""

from __future__ import annotations

from typing import Any

from kassa.billing.services import (
    LineInput,
    create_case,
    create_customer,
    issue_invoice,
    take_payment,
)
from kassa.tenancy.models import Role
from kassa.tenancy.services import create_organization, create_user, update_settings

DEMO_PASSWORD = "kassa-demo-1"


def load_demo() -> dict[str, Any]:
    """Not one transaction: its online payments charge the gateway, which no transaction may
    span. Each step is its own money transaction, and an organization already loaded stops it
    at the first (its e-mail addresses are taken)."""
    home, home_admin, home_token = create_organization(
        name="Evergreen Funeral Home", currency="USD", timezone="America/Chicago",
        admin_email="director@evergreen.example", admin_password=DEMO_PASSWORD,
        center_name="Evergreen Chapel",
    )
    front, _ = create_user(organization=home, email="desk@evergreen.example",
                           role=Role.FRONT_DESK, password=DEMO_PASSWORD)
    create_user(organization=home, email="books@evergreen.example", role=Role.ACCOUNTANT,
                password=DEMO_PASSWORD)
    center = str(home.centers.get().pk)
    update_settings(actor=home_admin, changes={"business_kind": "funeral_home"})
    home_admin.organization.refresh_from_db()
    family = create_customer(actor=home_admin, name="The Alvarez Family",
                             email="maria.alvarez@example.com", contact_name="Maria Alvarez")
    case = create_case(actor=home_admin, customer=str(family.pk), name="Jose Alvarez (1941–2026)")
    services = issue_invoice(actor=home_admin, customer=str(family.pk), center=center,
                             case=str(case.pk), lines=[
        LineInput("service", "Professional services of funeral director and staff", 1, "2450.00"),
        LineInput("service", "Embalming and preparation", 1, "895.00"),
        LineInput("product", "Oak casket", 1, "3200.00", "8.25"),
    ])
    take_payment(actor=home_admin, invoice=str(services.pk), amount="2500.00", method="card",
                 online=True, source="sandbox_ok")
    take_payment(actor=front, invoice=str(services.pk), amount="1500.00", method="check",
                 online=False)
    flowers = issue_invoice(actor=home_admin, customer=str(family.pk), center=center,
                            case=str(case.pk), lines=[
        LineInput("product", "Casket spray, white roses", 1, "325.00", "8.25"),
    ])
    take_payment(actor=front, invoice=str(flowers.pk), amount="351.81", method="card",
                 online=True)

    spa, spa_admin, spa_token = create_organization(
        name="Lumen Day Spa", currency="USD", timezone="America/New_York",
        admin_email="owner@lumenspa.example", admin_password=DEMO_PASSWORD,
        center_name="Lumen Downtown",
    )
    create_user(organization=spa, email="desk@lumenspa.example", role=Role.FRONT_DESK,
                password=DEMO_PASSWORD)
    spa_center = str(spa.centers.get().pk)
    for name, email, lines, paid in [
        ("Ava Chen", "ava.chen@example.com",
         [LineInput("service", "Signature facial", 1, "145.00", "0"),
          LineInput("product", "Hydrating serum", 1, "62.00", "8.875")], "212.50"),
        ("Noah Patel", "noah.patel@example.com",
         [LineInput("service", "Deep tissue massage, 90 min", 1, "180.00", "0")], "100.00"),
    ]:
        guest = create_customer(actor=spa_admin, name=name, email=email)
        invoice = issue_invoice(actor=spa_admin, customer=str(guest.pk), center=spa_center,
                                lines=lines)
        take_payment(actor=spa_admin, invoice=str(invoice.pk), amount=paid, method="cash",
                     online=False)

    # A treatment package paid in instalments, partly used, refunded once.
    from kassa.packages.services import BenefitInput, create_template, redeem_benefit
    from kassa.refunds.services import refund_package

    contouring = create_template(
        actor=spa_admin, name="Body contouring, 5 sessions", price="1000.00", tax_rate="8.875",
        benefits=[BenefitInput("Contouring session", 5, "200.00")])
    mia = create_customer(actor=spa_admin, name="Mia Rossi", email="mia.rossi@example.com")
    sale = issue_invoice(actor=spa_admin, customer=str(mia.pk), center=spa_center, lines=[
        LineInput("package", "Body contouring, 5 sessions", 1,
                  package_template=str(contouring.pk)),
    ])
    take_payment(actor=spa_admin, invoice=str(sale.pk), amount="500.00", method="card",
                 online=True)
    take_payment(actor=spa_admin, invoice=str(sale.pk), amount="300.00", method="cash",
                 online=False)
    package = sale.packages.get()
    redeem_benefit(actor=spa_admin, package=package.pk, benefit=package.benefits.get().pk,
                   quantity=1)
    refund_package(actor=spa_admin, package=package.pk, amount="150.00",
                   reason="Guest is travelling for two months", method="cash")

    return {
        "organizations": [
            {"id": str(home.pk), "name": home.name, "admin_token": home_token.token},
            {"id": str(spa.pk), "name": spa.name, "admin_token": spa_token.token},
        ],
        "sign_in": {"email": "director@evergreen.example", "password": DEMO_PASSWORD},
    }
