"""The data set the reports are timed on: years of a busy spa chain, generated in SQL.

One organization (America/New_York) with `CENTERS` centers and three years of business days.
At scale 1: 1,000,000 packages (one invoice each, paid in one or two instalments, redeemed,
sometimes refunded or closed) and 100,000 service and product invoices: 10,036,639
postings. Every row is what the services would have written (`kassa verify` passes on it:
the bench runs it), but it is generated set-based — generate_series, INSERT … SELECT — not
through the ORM, so that it takes minutes, not days:

1. `ent`: one row per business event (invoice issued, payment, redemption, package refund,
   package closed), from arithmetic on the package number so that every amount is exact:
   prices are whole $100s, tax 8 %, half payments and a tenth per redemption divide evenly.
   An event falls on the sale day plus a fixed offset; events past the last day have not
   happened yet, and each package's later events only exist if its earlier ones do. The
   events are numbered in time order: the journal entries' ids.
2. Postings are appended in that order, as production appends them.
3. Each entry's postings come from a small table of what each kind of event posts (DESIGN.md,
   "The books"), so every entry balances by construction; the bench checks it anyway.
4. Invoices, lines, payments, allocations, packages, benefits, redemptions, refunds and their
   credits from the same events, so the stored figures are the sums of their postings.
5. `DailyTotal` with one INSERT … SELECT … GROUP BY over the postings: what `post()` keeps.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from bench import bulk_load

VERSION = 4  # bump when what is generated changes: a cached data set of another version is rebuilt
CENTERS = 10
START = dt.date(2023, 1, 1)
DAYS = 1096  # 2023-01-01 … 2025-12-31
TIMEZONE = "America/New_York"
ORG_NAME = "Kassa Bench Spas"
ADMIN_EMAIL = "bench-admin@kassa-bench.example"
MARKER = "bench_dataset"

LOADED_TABLES = [
    "billing_customer", "billing_invoice", "billing_invoiceline", "billing_payment",
    "billing_paymentallocation", "packages_packagetemplate", "packages_templatebenefit",
    "packages_package", "packages_benefit", "packages_redemption", "refunds_refund",
    "billing_linecredit", "ledger_journalentry", "ledger_posting", "ledger_dailytotal",
    "gateways_sandboxcharge",
]


@dataclass(frozen=True)
class Plan:
    scale: float
    packages: int
    service_invoices: int
    centers: int = CENTERS
    start: dt.date = START
    days: int = DAYS
    version: int = VERSION

    @classmethod
    def at(cls, scale: float) -> Plan:
        packages = max(100, round(1_000_000 * scale))
        return cls(scale=scale, packages=packages, service_invoices=max(10, packages // 10))

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def customers(self) -> int:
        return (self.packages + 1) // 2

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v)
                for k, v in asdict(self).items()}


def last_day(plan: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(plan["start"]) + dt.timedelta(days=plan["days"] - 1)


@dataclass
class Built:
    plan: dict[str, Any]
    counts: dict[str, int]
    seconds: dict[str, float]
    built_at: str
    reused: bool = False


# What each kind of event posts: (gen, n, code or None for the event's tender, amount column,
# sign, with payment, with package, with refund). Every posting names its invoice.
# Debit positive, credit negative, as in kassa.ledger.services.
POSTINGS = [
    ("issue_package", 1, "receivable", "a", 1, False, False, False),
    ("issue_package", 2, "package_sold_unpaid", "b", -1, False, True, False),
    ("issue_package", 3, "tax_payable", "c", -1, False, False, False),
    ("issue_service", 1, "receivable", "a", 1, False, False, False),
    ("issue_service", 2, "revenue_service", "b", -1, False, False, False),
    ("issue_service", 3, "tax_payable", "c", -1, False, False, False),
    ("issue_product", 1, "receivable", "a", 1, False, False, False),
    ("issue_product", 2, "revenue_product", "b", -1, False, False, False),
    ("issue_product", 3, "tax_payable", "c", -1, False, False, False),
    ("payment_package", 1, None, "a", 1, True, False, False),
    ("payment_package", 2, "receivable", "a", -1, True, False, False),
    ("payment_package", 3, "package_sold_unpaid", "b", 1, True, True, False),
    ("payment_package", 4, "package_liability", "b", -1, True, True, False),
    ("payment_service", 1, None, "a", 1, True, False, False),
    ("payment_service", 2, "receivable", "a", -1, True, False, False),
    ("redemption", 1, "package_liability", "a", 1, False, True, False),
    ("redemption", 2, "revenue_redemption", "a", -1, False, True, False),
    ("package_refund", 1, "package_liability", "b", 1, False, True, True),
    ("package_refund", 2, "tax_payable", "c", 1, False, True, True),
    ("package_refund", 3, None, "a", -1, False, True, True),
    ("package_closed", 1, "package_liability", "a", 1, False, True, False),
    ("package_closed", 2, "revenue_forfeit", "a", -1, False, True, False),
]

# The events. Package i (1…N) is sold on day s (ids grow with time) at center ci for a price
# of $100 × (1 + i mod 20), tax 8 %. It is paid in full on the day (i mod 10 = 5: half only,
# the invoice stays open; i mod 10 = 0: half, and the other half 30 days later), by cash when
# i mod 4 = 0, else by card online. i mod 3 sessions of ten are redeemed (days 14 and 28);
# i mod 20 = 7: a tenth refunded in cash on day 45; i mod 50 = 13: closed on day 60, what is
# left forfeited. (Refunded and closed packages are fully paid; their sets are disjoint.)
# Service invoice j (1…M): one service (odd j) or product line, paid on the day by card, cash
# or check. (One SELECT per kind of event, not a LATERAL VALUES list per package: PostgreSQL
# sets up a VALUES list's expressions again for every outer row, which was ten times slower.)
EVENTS_SQL = """
WITH p AS (
    SELECT i, ((i - 1)::bigint * %(days)s / %(n)s)::int AS s, mod(i - 1, %(centers)s) AS ci,
           10000 * (1 + mod(i, 20))::bigint AS price,
           CASE WHEN mod(i, 4) = 0 THEN 'cash' ELSE 'card' END AS tender,
           mod(i, 10) IN (0, 5) AS halves
    FROM generate_series(1, %(n)s) AS i
), q AS (
    SELECT j, ((j - 1)::bigint * %(days)s / %(m)s)::int AS day, mod(j - 1, %(centers)s) AS ci,
           5000 + 500 * mod(j, 20)::bigint AS price
    FROM generate_series(1, %(m)s) AS j
)
SELECT 'issue_package' AS gen, 'invoice_issued' AS kind, s AS day, 0 AS ord, ci, i AS pkg,
       i AS inv, NULL::bigint AS pay, NULL::bigint AS ref, NULL::text AS method,
       price * 108 / 100 AS a, price AS b, price * 8 / 100 AS c
FROM p
UNION ALL
SELECT 'payment_package', 'payment', s, 1, ci, i, i, 2 * i - 1, NULL, tender,
       CASE WHEN halves THEN price * 54 / 100 ELSE price * 108 / 100 END,
       CASE WHEN halves THEN price / 2 ELSE price END,
       CASE WHEN halves THEN price * 4 / 100 ELSE price * 8 / 100 END
FROM p
UNION ALL
SELECT 'payment_package', 'payment', s + 30, 1, ci, i, i, 2 * i, NULL, tender,
       price * 54 / 100, price / 2, price * 4 / 100
FROM p WHERE mod(i, 10) = 0 AND s + 30 < %(days)s
UNION ALL
SELECT 'redemption', 'redemption', s + 14, 2, ci, i, i, NULL, NULL, NULL, price / 10, NULL, NULL
FROM p WHERE mod(i, 3) >= 1 AND s + 14 < %(days)s
UNION ALL
SELECT 'redemption', 'redemption', s + 28, 2, ci, i, i, NULL, NULL, NULL, price / 10, NULL, NULL
FROM p WHERE mod(i, 3) = 2 AND s + 28 < %(days)s
UNION ALL
SELECT 'package_refund', 'package_refund', s + 45, 3, ci, i, i, NULL, (i - 7) / 20 + 1, 'cash',
       price / 10 + price / 125, price / 10, price / 125
FROM p WHERE mod(i, 20) = 7 AND s + 45 < %(days)s
UNION ALL
SELECT 'package_closed', 'package_closed', s + 60, 4, ci, i, i, NULL, NULL, NULL,
       price - mod(i, 3) * price / 10, NULL, NULL
FROM p WHERE mod(i, 50) = 13 AND s + 60 < %(days)s
UNION ALL
SELECT CASE WHEN mod(j, 2) = 1 THEN 'issue_service' ELSE 'issue_product' END,
       'invoice_issued', day, 0, ci, NULL, %(n)s + j, NULL, NULL, NULL,
       price * 108 / 100, price, price * 8 / 100
FROM q
UNION ALL
SELECT 'payment_service', 'payment', day, 1, ci, NULL, %(n)s + j, 2 * %(n)s + j, NULL,
       (ARRAY['card', 'cash', 'check'])[1 + mod(j, 3)],
       price * 108 / 100, price, price * 8 / 100
FROM q
"""

# Journal entries in time order; their id orders the postings as production appends them.
# The events in time order, numbered: the journal entries. Each happens on its business day
# between 09:00 and 18:00 in the organization's zone.
ENTRIES_SQL = f"""
CREATE TEMP TABLE ent ON COMMIT DROP AS
SELECT x.*, ((x.business_date + time '09:00') + mod(x.id, 32400) * interval '1 second')
                AT TIME ZONE %(tz)s AS at
FROM (SELECT row_number() OVER (ORDER BY day, inv, ord) AS id, ev.*,
             %(start)s::date + day AS business_date
      FROM ({EVENTS_SQL}) AS ev) AS x
ORDER BY x.day, x.inv, x.ord
"""

# What each kind of event posts at each center by each tender ('' for none), with its account.
ACCOUNTS_SQL = """
CREATE TEMP TABLE pa ON COMMIT DROP AS
SELECT t.gen, k.ci, m.method, t.n, a.id AS account_id, c.id AS center_id, a.code, t.amount,
       t.sign, t.with_payment, t.with_package, t.with_refund
FROM posts t
CROSS JOIN unnest(%(cids)s::bigint[]) WITH ORDINALITY AS c(id, position)
CROSS JOIN LATERAL (SELECT c.position - 1 AS ci) AS k
CROSS JOIN (VALUES ('card'), ('cash'), ('check'), ('')) AS m(method)
JOIN ledger_account a ON a.center_id = c.id AND a.code = coalesce(t.code, nullif(m.method, ''))
"""

# Per invoice (= per package for package invoices) what its events add up to.
FIGURES_SQL = """
CREATE TEMP TABLE fig ON COMMIT DROP AS
SELECT inv, min(pkg) AS pkg, min(ci) AS ci,
       min(gen) FILTER (WHERE kind = 'invoice_issued') AS issue,
       min(at) FILTER (WHERE kind = 'invoice_issued') AS issued_at,
       sum(a) FILTER (WHERE kind = 'invoice_issued') AS total,
       sum(b) FILTER (WHERE kind = 'invoice_issued') AS net,
       sum(c) FILTER (WHERE kind = 'invoice_issued') AS tax,
       coalesce(sum(a) FILTER (WHERE kind = 'payment'), 0) AS paid,
       coalesce(sum(b) FILTER (WHERE kind = 'payment'), 0) AS paid_net,
       coalesce(sum(c) FILTER (WHERE kind = 'payment'), 0) AS paid_tax,
       coalesce(sum(a) FILTER (WHERE kind = 'redemption'), 0) AS redeemed,
       count(*) FILTER (WHERE kind = 'redemption') AS sessions,
       coalesce(sum(b) FILTER (WHERE kind = 'package_refund'), 0) AS refunded_net,
       coalesce(sum(c) FILTER (WHERE kind = 'package_refund'), 0) AS refunded_tax,
       coalesce(sum(a) FILTER (WHERE kind = 'package_closed'), 0) AS forfeited,
       min(at) FILTER (WHERE kind = 'package_closed') AS closed_at
FROM ent GROUP BY inv
"""

ROWS_SQL = [
    ("billing_customer", """
INSERT INTO billing_customer (id, organization_id, name, contact_name, email, credit_minor,
                              requested_minor, created_at)
SELECT k, %(org)s, 'Guest ' || k, '', 'guest' || k || '@kassa-bench.example', 0, 0,
       (%(start)s::date + ((2 * k - 2)::bigint * %(days)s / %(n)s)::int + time '09:00')
           AT TIME ZONE %(tz)s
FROM generate_series(1, %(customers)s) AS k
"""),
    ("packages_packagetemplate", """
INSERT INTO packages_packagetemplate (id, organization_id, name, price_minor, tax_rate, created_at)
SELECT t, %(org)s, 'Ten sessions, $' || (100 * t), 10000 * t, 8, %(start)s::timestamptz
FROM generate_series(1, 20) AS t
"""),
    ("packages_templatebenefit", """
INSERT INTO packages_templatebenefit (id, organization_id, template_id, position, name, quantity,
    unit_value_minor)
SELECT t, %(org)s, t, 1, 'Session', 10, 1000 * t FROM generate_series(1, 20) AS t
"""),
    ("billing_invoice", """
INSERT INTO billing_invoice (id, organization_id, center_id, customer_id, case_id, number,
    status, subtotal_minor, tax_minor, total_minor, credits_minor, paid_minor, refunded_minor,
    balance_due_minor, created_at, created_by_id)
SELECT f.inv, %(org)s, (%(cids)s::bigint[])[f.ci + 1],
       CASE WHEN f.inv <= %(n)s THEN (f.inv + 1) / 2
            ELSE 1 + mod((f.inv - %(n)s) * 7919, %(customers)s) END,
       NULL, (1000 + f.inv)::text,
       CASE WHEN f.total - f.paid > 0 THEN 'open' ELSE 'closed' END,
       f.net, f.tax, f.total, f.refunded_net + f.refunded_tax, f.paid,
       f.refunded_net + f.refunded_tax, f.total - f.paid, f.issued_at, NULL
FROM fig f ORDER BY f.inv
"""),
    ("billing_invoiceline", """
INSERT INTO billing_invoiceline (id, organization_id, invoice_id, position, kind, description,
    quantity, unit_price_minor, tax_rate, net_minor, tax_minor, paid_net_minor, paid_tax_minor,
    credited_net_minor, credited_tax_minor, refunded_net_minor, refunded_tax_minor)
SELECT f.inv, %(org)s, f.inv, 1, CASE f.issue WHEN 'issue_package' THEN 'package'
                                     WHEN 'issue_service' THEN 'service' ELSE 'product' END,
       CASE f.issue WHEN 'issue_package' THEN 'Ten sessions, $' || (f.net / 100)
                    WHEN 'issue_service' THEN 'Massage, 60 minutes' ELSE 'Skin care set' END,
       1, f.net, 8, f.net, f.tax, f.paid_net, f.paid_tax, f.refunded_net, f.refunded_tax,
       f.refunded_net, f.refunded_tax
FROM fig f ORDER BY f.inv
"""),
    ("packages_package", """
INSERT INTO packages_package (id, organization_id, center_id, customer_id, invoice_id, line_id,
    template_id, name, status, price_minor, tax_rate, redeemed_minor, forfeited_minor,
    requested_minor, created_at, closed_at)
SELECT f.pkg, %(org)s, (%(cids)s::bigint[])[f.ci + 1], (f.pkg + 1) / 2, f.inv, f.inv, f.net / 10000,
       'Ten sessions, $' || (f.net / 100),
       CASE WHEN f.closed_at IS NULL THEN 'active' ELSE 'closed' END,
       f.net, 8, f.redeemed, f.forfeited, 0, f.issued_at, f.closed_at
FROM fig f WHERE f.pkg IS NOT NULL ORDER BY f.pkg
"""),
    ("packages_benefit", """
INSERT INTO packages_benefit (id, organization_id, package_id, position, name, quantity, used,
    unit_value_minor)
SELECT f.pkg, %(org)s, f.pkg, 1, 'Session', 10, f.sessions, f.net / 10
FROM fig f WHERE f.pkg IS NOT NULL ORDER BY f.pkg
"""),
    ("billing_payment", """
INSERT INTO billing_payment (id, organization_id, center_id, invoice_id, customer_id,
    amount_minor, to_credit_minor, method, online, source, gateway, gateway_reference,
    refunded_minor, refunded_online_minor, refund_pending, status, charge_state, attempts,
    next_attempt_at, failure_reason, request_key, created_at, created_by_id, disputed,
    taken_back_minor, requested_minor)
SELECT e.pay, %(org)s, (%(cids)s::bigint[])[e.ci + 1], e.inv, i.customer_id, e.a, 0, e.method,
       e.method = 'card',
       CASE WHEN e.method = 'card' THEN 'sandbox_ok' ELSE '' END,
       CASE WHEN e.method = 'card' THEN 'sandbox' ELSE '' END,
       CASE WHEN e.method = 'card' THEN 'sbx_ch_' || e.pay ELSE '' END,
       0, 0, false, 'succeeded', '', 0, NULL, '', '', e.at, NULL, false, 0, 0
FROM ent e JOIN billing_invoice i ON i.id = e.inv WHERE e.kind = 'payment'
"""),
    # The sandbox processor's side of every card payment: the charge it keeps (`kassa verify`
    # holds each succeeded sandbox payment against it).
    ("gateways_sandboxcharge", """
INSERT INTO gateways_sandboxcharge (organization_id, reference, idempotency_key, amount_minor,
    currency, source, state, cancelled, created_at)
SELECT %(org)s, 'sbx_ch_' || e.pay, %(charge_key)s || e.pay, e.a, 'USD', 'sandbox_ok',
       'succeeded', false, e.at
FROM ent e WHERE e.kind = 'payment' AND e.method = 'card'
"""),
    ("billing_paymentallocation", """
INSERT INTO billing_paymentallocation (organization_id, payment_id, line_id, net_minor,
    tax_minor, refund_id, created_at)
SELECT %(org)s, e.pay, e.inv, e.b, e.c, NULL, e.at FROM ent e WHERE e.kind = 'payment'
"""),
    ("packages_redemption", """
INSERT INTO packages_redemption (organization_id, package_id, benefit_id, quantity,
    amount_minor, created_by_id, created_at)
SELECT %(org)s, e.pkg, e.pkg, 1, e.a, NULL, e.at FROM ent e WHERE e.kind = 'redemption'
"""),
    ("refunds_refund", """
INSERT INTO refunds_refund (id, organization_id, center_id, invoice_id, payment_id, package_id,
    close_package, type, status, amount_minor, tax_minor, method, reason, internal_note, note,
    decrease_balance_owed, credit_net_minor, credit_tax_minor, created_by_id, created_at,
    settled_at, failure_reason, gateway, gateway_reference, gateway_state, attempts,
    next_attempt_at, last_error, issue_entry_id, settle_entry_id, keyed_by_installation,
    request_key, from_credit, payee, override_reason, split_group, origin)
SELECT e.ref, %(org)s, (%(cids)s::bigint[])[e.ci + 1], e.inv, NULL, e.pkg, false, 'offline',
       'recorded', e.b, e.c, e.method, 'Customer moved away', '', '', false, 0, 0, NULL, e.at,
       NULL, '', '', '', '', 0, NULL, '', e.id, NULL, true, '', false, '', '', '', 'kassa'
FROM ent e WHERE e.kind = 'package_refund'
"""),
    ("billing_linecredit", """
INSERT INTO billing_linecredit (organization_id, refund_id, line_id, net_minor, tax_minor,
    gives_back)
SELECT %(org)s, e.ref, e.inv, e.b, e.c, true FROM ent e WHERE e.kind = 'package_refund'
"""),
    ("ledger_journalentry", """
INSERT INTO ledger_journalentry (id, organization_id, center_id, kind, memo, business_date,
    created_at, created_by_id, reverses_id)
SELECT e.id, %(org)s, (%(cids)s::bigint[])[e.ci + 1], e.kind,
       CASE e.kind WHEN 'invoice_issued' THEN 'Invoice ' || (1000 + e.inv)
                   WHEN 'payment' THEN 'Payment on invoice ' || (1000 + e.inv)
                   WHEN 'redemption' THEN '1 × Session'
                   WHEN 'package_refund' THEN 'Refund of package ' || e.pkg
                                              || ': Customer moved away'
                   ELSE 'Package ' || e.pkg || ' closed' END,
       e.business_date, e.at, NULL, NULL
FROM ent e
"""),
    # Each entry's postings come from `pa` (what its kind posts, with the accounts of its
    # center and tender) through a lateral subquery that the planner cannot flatten (OFFSET 0):
    # a nested loop over `ent` read in id order, so the postings are appended in time order,
    # as production appends them, without sorting ten million rows.
    ("ledger_posting", """
INSERT INTO ledger_posting (entry_id, account_id, organization_id, center_id, code, kind,
    business_date, amount_minor, invoice_id, payment_id, refund_id, package_id)
SELECT e.id, pa.account_id, %(org)s, pa.center_id, pa.code, e.kind, e.business_date,
       pa.sign * CASE pa.amount WHEN 'a' THEN e.a WHEN 'b' THEN e.b ELSE e.c END,
       e.inv, CASE WHEN pa.with_payment THEN e.pay END,
       CASE WHEN pa.with_refund THEN e.ref END, CASE WHEN pa.with_package THEN e.pkg END
FROM ent e CROSS JOIN LATERAL (
    SELECT * FROM pa WHERE pa.gen = e.gen AND pa.ci = e.ci
                       AND pa.method = coalesce(e.method, '')
    ORDER BY pa.n OFFSET 0) AS pa
"""),
    # What post() keeps with every posting, kept here in one pass.
    ("ledger_dailytotal", """
INSERT INTO ledger_dailytotal (organization_id, center_id, business_date, code, kind,
    amount_minor, postings)
SELECT organization_id, center_id, business_date, code, kind, sum(amount_minor), count(*)
FROM ledger_posting GROUP BY organization_id, center_id, business_date, code, kind
ORDER BY center_id, business_date, code, kind
"""),
]

# What the disabled balance trigger would have refused, and the packages' stored figures
# against their sub-ledger. (The per-day totals are the postings' GROUP BY by construction;
# The bench runs `kassa verify`, which checks them and every other stored figure.)
CHECKS_SQL = {
    "unbalanced entries": """
        SELECT count(*) FROM (SELECT entry_id FROM ledger_posting GROUP BY entry_id
                              HAVING sum(amount_minor) <> 0) AS x""",
    "packages whose figures differ from their postings": """
        SELECT count(*) FROM packages_package p
        JOIN billing_invoiceline li ON li.id = p.line_id
        LEFT JOIN (SELECT package_id, sum(amount_minor) AS s FROM ledger_posting
                   WHERE code = 'package_liability' GROUP BY package_id) l
               ON l.package_id = p.id
        WHERE li.paid_net_minor - p.redeemed_minor - li.refunded_net_minor - p.forfeited_minor
              <> -coalesce(l.s, 0)""",
}


@contextmanager
def _step(seconds: dict[str, float], name: str, say: Callable[[str], None]) -> Iterator[None]:
    began = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - began, 2)
    say(f"  {name}: {seconds[name]:.1f} s")


def cached(cursor: Any) -> Built | None:
    cursor.execute("SELECT to_regclass(%s)", [MARKER])
    if cursor.fetchone()[0] is None:
        return None
    cursor.execute(f"SELECT plan, counts, seconds, built_at FROM {MARKER} ORDER BY id DESC LIMIT 1")
    row = cursor.fetchone()
    if row is None:
        return None
    # Django's connection hands jsonb back as text (its JSONField parses it).
    plan, counts, seconds = (json.loads(v) if isinstance(v, str) else v for v in row[:3])
    return Built(plan=plan, counts=counts, seconds=seconds, built_at=row[3].isoformat(),
                 reused=True)


def _organization() -> Any:
    """The bench's organization, its centers and admin, through the services."""
    from kassa.tenancy.models import Organization
    from kassa.tenancy.services import create_center, create_organization

    assert not Organization.objects.exists(), "the bench database must be fresh"
    org, _, _ = create_organization(name=ORG_NAME, admin_email=ADMIN_EMAIL, timezone=TIMEZONE,
                                    center_name="Center 01")
    for k in range(2, CENTERS + 1):
        create_center(organization=org, name=f"Center {k:02d}")
    return org


def generate(plan: Plan, say: Callable[[str], None]) -> Built:
    """Fill the (fresh, migrated) bench database: the data in one transaction, the marker
    after it, so that a load cut short is rebuilt by the next run."""
    from django.db import connection, transaction

    from kassa.core.installation import installation_key
    from kassa.tenancy.models import Center

    seconds: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    org = _organization()
    centers = list(Center.objects.filter(organization=org).order_by("id").values_list("id",
                                                                                      flat=True))
    params = {"org": org.pk, "cids": centers, "n": plan.packages, "m": plan.service_invoices,
              "centers": plan.centers, "days": plan.days, "start": plan.start,
              "customers": plan.customers, "tz": TIMEZONE,
              "charge_key": f"kassa-{installation_key()}-payment-"}
    say(f"bench: generating {plan.packages:,} packages and {plan.service_invoices:,} service "
        f"invoices over {plan.days} days ({plan.start} … {plan.end}), {plan.centers} centers")
    with transaction.atomic(), connection.cursor() as cursor:
        # A bulk load's memory, for this transaction only (the server's defaults stay).
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        # Temp tables are read in the order they were written (see the postings).
        cursor.execute("SET LOCAL synchronize_seqscans = off")
        with _step(seconds, "set aside secondary indexes and triggers", say):
            aside = bulk_load.set_aside(cursor, LOADED_TABLES)
        say(f"    for the load: dropped {len(aside.indexes)} secondary indexes (rebuilt after) "
            f"and DISABLE TRIGGER ALL on {len(LOADED_TABLES)} tables ({aside.triggers} triggers:"
            " the ledger's balance check and append-only guards, the foreign keys' checks)")
        cursor.execute("CREATE TEMP TABLE posts (gen text, n int, code text, amount text, "
                       "sign int, with_payment bool, with_package bool, with_refund bool) "
                       "ON COMMIT DROP")
        cursor.executemany("INSERT INTO posts VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                           POSTINGS)
        cursor.execute(ACCOUNTS_SQL, params)
        cursor.execute("CREATE INDEX ON pa (gen, ci, method, n)")
        cursor.execute("ANALYZE pa")
        with _step(seconds, "events, in time order", say):
            cursor.execute(ENTRIES_SQL, params)
            cursor.execute("ANALYZE ent")
        with _step(seconds, "figures per invoice and package", say):
            cursor.execute(FIGURES_SQL, params)
            cursor.execute("ANALYZE fig")
        for table, sql in ROWS_SQL:
            with _step(seconds, table, say):
                cursor.execute(sql, params)
        with _step(seconds, "rebuild indexes, enable triggers", say):
            bulk_load.restore(cursor, aside)
        for table in LOADED_TABLES:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                           f"(SELECT coalesce(max(id), 1) FROM {table}))", [table])
        cursor.execute("UPDATE tenancy_organization SET next_invoice_number = %s WHERE id = %s",
                       [1001 + plan.packages + plan.service_invoices, org.pk])
        counts = {}
        for table in LOADED_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
        with _step(seconds, "checks", say):
            for name, sql in CHECKS_SQL.items():
                cursor.execute(sql)
                found = cursor.fetchone()[0]
                say(f"    {name}: {found}")
                assert found == 0, f"the generated data is wrong: {found} {name}"
    with _step(seconds, "vacuum analyze", say), connection.cursor() as cursor:
        for table in LOADED_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
    seconds["total"] = round(time.perf_counter() - began, 2)
    # Other work on the machine slows the load down: say how busy it was.
    seconds["load_average_before"] = round(load_before, 2)
    seconds["load_average_after"] = round(os.getloadavg()[0], 2)
    say(f"bench: generated in {seconds['total']:.0f} s (load average "
        f"{seconds['load_average_before']} before, {seconds['load_average_after']} after, "
        f"on {os.cpu_count()} cores)")
    built = Built(plan=plan.as_json(), counts=counts, seconds=seconds,
                  built_at=dt.datetime.now(dt.UTC).isoformat())
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {MARKER} (id serial PRIMARY KEY, "
                       "plan jsonb, counts jsonb, seconds jsonb, built_at timestamptz)")
        cursor.execute(f"INSERT INTO {MARKER} (plan, counts, seconds, built_at) "
                       "VALUES (%s, %s, %s, %s)",
                       [json.dumps(built.plan), json.dumps(counts), json.dumps(seconds),
                        built.built_at])
    return built
