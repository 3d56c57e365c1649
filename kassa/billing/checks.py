"""`kassa verify` checks of invoices, their lines and payments against their rows and
sub-ledgers: each one query per batch of objects, grouped and compared in the database (see
kassa/ledger/verify.py), returning only the objects that disagree."""

from __future__ import annotations

from collections.abc import Iterable

from kassa.billing.models import ChargeState, Payment, PaymentStatus
from kassa.core.installation import installation_key
from kassa.ledger.verify import (
    CUSTOMERS,
    INVOICES,
    PAYMENTS,
    Run,
    check,
    each,
    fetch,
    in_list,
    spans,
    within,
)
from kassa.tenancy.models import Organization

# A payment's booking, and its reversal when the processor failed the charge after all; a
# payment from credit; a deposit (which pays no invoice, but is the payment's booking).
PAID_KINDS = ("payment", "payment_reversed", "credit_applied", "deposit", "deposit_reversed")
# What an invoice was paid and then was not: a returned payment, a lost dispute re-billed.
UNPAID_KINDS = ("payment_returned", "dispute_rebilled")


@check
def invoices_agree_with_ledger(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, INVOICES, run, f"""
        SELECT i.id, i.number, i.status, i.total_minor, i.credits_minor, i.paid_minor,
               i.refunded_minor, i.balance_due_minor,
               COALESCE(l.receivable, 0), COALESCE(l.issued, 0), COALESCE(l.paid, 0)
        FROM billing_invoice i LEFT JOIN (
            SELECT p.invoice_id, SUM(p.amount_minor) AS receivable,
                   SUM(CASE WHEN p.kind = 'invoice_issued' THEN p.amount_minor ELSE 0 END)
                       AS issued,
                   SUM(CASE WHEN p.kind IN {in_list(PAID_KINDS + UNPAID_KINDS)}
                            THEN p.amount_minor ELSE 0 END) AS paid
            FROM ledger_posting p
            WHERE p.code = 'receivable' AND p.organization_id = %(org)s
              AND {within('p.invoice_id', INVOICES, run)}
            GROUP BY p.invoice_id) l ON l.invoice_id = i.id
        WHERE i.organization_id = %(org)s AND {within('i.id', INVOICES, run)}
          AND (i.balance_due_minor <> COALESCE(l.receivable, 0)
               OR i.total_minor <> COALESCE(l.issued, 0)
               OR i.paid_minor <> -COALESCE(l.paid, 0)
               OR i.balance_due_minor <> i.total_minor - i.credits_minor - i.paid_minor
                                         + i.refunded_minor
               OR i.status <> CASE WHEN i.balance_due_minor > 0 THEN 'open' ELSE 'closed' END)
        ORDER BY i.id""")
    for (pk, number, status, total, credits, paid, refunded, balance_due,
         receivable, issued, paid_booked) in rows:
        name = f"invoice {number} (id {pk})"
        if balance_due != receivable:
            yield (f"{name}: balance_due is {balance_due}, "
                   f"the receivable sub-ledger says {receivable}")
        if total != issued:
            yield f"{name}: total is {total}, issued {issued}"
        if paid != -paid_booked:
            yield f"{name}: paid is {paid}, the ledger says {-paid_booked}"
        if balance_due != total - credits - paid + refunded:
            yield f"{name}: balance_due {balance_due} ≠ total − credits − paid + refunded"
        expected = "open" if balance_due > 0 else "closed"
        if status != expected:
            yield f"{name}: status is {status}, its balance due says {expected}"


@check
def payments_agree_with_ledger(org: Organization, run: Run | None = None) -> Iterable[str]:
    """A succeeded payment is booked for its amount; any other (processing, failed, declined)
    has nothing booked at all: no posting, no allocation."""
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.status, y.amount_minor, y.to_credit_minor, -COALESCE(l.taken, 0),
               CASE WHEN a.payment_id IS NULL THEN 0 ELSE 1 END
        FROM billing_payment y
        LEFT JOIN (
            SELECT p.payment_id, SUM(p.amount_minor) AS taken FROM ledger_posting p
            WHERE p.code = 'receivable' AND p.kind IN {in_list(PAID_KINDS)}
              AND p.organization_id = %(org)s AND {within('p.payment_id', PAYMENTS, run)}
            GROUP BY p.payment_id) l ON l.payment_id = y.id
        LEFT JOIN (
            SELECT a.payment_id FROM billing_paymentallocation a
            WHERE {within('a.payment_id', PAYMENTS, run)}
            GROUP BY a.payment_id HAVING SUM(a.net_minor) <> 0 OR SUM(a.tax_minor) <> 0
        ) a ON a.payment_id = y.id
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND ((y.status = %(succeeded)s
                AND y.amount_minor - y.to_credit_minor <> -COALESCE(l.taken, 0))
               OR (y.status <> %(succeeded)s
                   AND (COALESCE(l.taken, 0) <> 0 OR a.payment_id IS NOT NULL)))
        ORDER BY y.id""", {"succeeded": PaymentStatus.SUCCEEDED.value})
    for pk, status, amount, to_credit, booked, allocated in rows:
        if status == PaymentStatus.SUCCEEDED:
            into = f", {to_credit} of it into credit" if to_credit else ""
            yield f"payment {pk}: amount is {amount}{into}, the ledger says {booked}"
        else:
            yield (f"payment {pk} is {status}, yet {booked} of it is booked"
                   + (" and allocated to lines" if allocated else ""))


# What the worker may still have to do about a payment's charge, by the payment's status.
CHARGE_STATES = {
    PaymentStatus.PROCESSING: {ChargeState.CHARGING, ChargeState.AWAITING, ChargeState.STUCK},
    PaymentStatus.SUCCEEDED: {ChargeState.NONE},
    PaymentStatus.FAILED: {ChargeState.NONE, ChargeState.GIVE_BACK, ChargeState.STUCK},
    PaymentStatus.DECLINED: {ChargeState.NONE, ChargeState.GIVE_BACK, ChargeState.STUCK},
}


def _allowed_charge_states() -> str:
    """SQL: the payment's (status, charge_state) is one that CHARGE_STATES allows."""
    return " OR ".join(
        f"(y.status = '{status.value}' AND y.charge_state IN "
        f"({', '.join(repr(str(s.value)) for s in states)}))"
        for status, states in CHARGE_STATES.items())


@check
def payments_charges_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """No charge is forgotten: a processing payment has a gateway call coming (or a person's
    attention), a failed one that was charged has its give-back coming."""
    run = run or Run()
    # The database picks the payments that break a rule; Python words what each one breaks.
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.online, y.status, y.charge_state, y.next_attempt_at IS NULL
        FROM billing_payment y
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)} AND (
            (y.online AND (NOT ({_allowed_charge_states()})
                           OR (y.charge_state NOT IN ('', 'stuck')
                               AND y.next_attempt_at IS NULL)))
            OR (NOT y.online AND NOT (y.status = 'succeeded' AND y.charge_state = '')))
        ORDER BY y.id""")
    for pk, online, status, charge_state, no_call in rows:
        if not online:
            yield f"payment {pk} is offline, yet not simply succeeded"
            continue
        allowed = CHARGE_STATES.get(PaymentStatus(status), set())
        if charge_state not in allowed:
            yield f"payment {pk} is {status} with its charge {charge_state or 'settled'}"
        elif no_call:
            yield f"payment {pk}: its charge is {charge_state} with no call due"


@check
def allocations_agree_with_lines(org: Organization, run: Run | None = None) -> Iterable[str]:
    run = run or Run()
    rows = each(org, INVOICES, run, f"""
        SELECT l.id, l.paid_net_minor, l.paid_tax_minor, COALESCE(s.net, 0), COALESCE(s.tax, 0)
        FROM billing_invoiceline l
        JOIN billing_invoice i ON i.id = l.invoice_id
        LEFT JOIN (
            SELECT a.line_id, SUM(a.net_minor) AS net, SUM(a.tax_minor) AS tax
            FROM billing_paymentallocation a JOIN billing_invoiceline al ON al.id = a.line_id
            WHERE {within('al.invoice_id', INVOICES, run)}
              AND {spans('a.line_id', INVOICES, 'id', 'billing_invoiceline', 'invoice_id')}
            GROUP BY a.line_id) s ON s.line_id = l.id
        WHERE i.organization_id = %(org)s AND {within('l.invoice_id', INVOICES, run)}
          AND {within('i.id', INVOICES, run)}
          AND (l.paid_net_minor <> COALESCE(s.net, 0) OR l.paid_tax_minor <> COALESCE(s.tax, 0))
        ORDER BY l.id""")
    for pk, paid_net, paid_tax, net, tax in rows:
        yield f"invoice line {pk}: paid {paid_net}+{paid_tax}, its allocations {net}+{tax}"


@check
def line_credits_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """A line's credited figures are its LineCredit rows; its refunded figures those that
    give the paid money back (package refunds)."""
    run = run or Run()
    rows = each(org, INVOICES, run, f"""
        SELECT l.id, l.credited_net_minor, l.credited_tax_minor, l.refunded_net_minor,
               l.refunded_tax_minor, COALESCE(c.n, 0), COALESCE(c.t, 0), COALESCE(c.bn, 0),
               COALESCE(c.bt, 0)
        FROM billing_invoiceline l
        JOIN billing_invoice i ON i.id = l.invoice_id
        LEFT JOIN (
            SELECT c.line_id, SUM(c.net_minor) AS n, SUM(c.tax_minor) AS t,
                   SUM(CASE WHEN c.gives_back THEN c.net_minor ELSE 0 END) AS bn,
                   SUM(CASE WHEN c.gives_back THEN c.tax_minor ELSE 0 END) AS bt
            FROM billing_linecredit c JOIN billing_invoiceline cl ON cl.id = c.line_id
            WHERE {within('cl.invoice_id', INVOICES, run)}
              AND {spans('c.line_id', INVOICES, 'id', 'billing_invoiceline', 'invoice_id')}
            GROUP BY c.line_id) c ON c.line_id = l.id
        WHERE i.organization_id = %(org)s AND {within('l.invoice_id', INVOICES, run)}
          AND {within('i.id', INVOICES, run)}
          AND (l.credited_net_minor <> COALESCE(c.n, 0) OR l.credited_tax_minor <> COALESCE(c.t, 0)
               OR l.refunded_net_minor <> COALESCE(c.bn, 0)
               OR l.refunded_tax_minor <> COALESCE(c.bt, 0))
        ORDER BY l.id""")
    for pk, credited_net, credited_tax, refunded_net, refunded_tax, n, t, bn, bt in rows:
        if (credited_net, credited_tax) != (n, t):
            yield (f"invoice line {pk}: credited {credited_net}+{credited_tax}, "
                   f"its credits {(n, t)}")
        if (refunded_net, refunded_tax) != (bn, bt):
            yield (f"invoice line {pk}: refunded {refunded_net}+{refunded_tax}, its credits "
                   f"that gave money back {(bn, bt)}")


@check
def invoices_agree_with_lines(org: Organization, run: Run | None = None) -> Iterable[str]:
    """An invoice's credits are its lines' credits."""
    run = run or Run()
    rows = each(org, INVOICES, run, f"""
        SELECT i.number, i.credits_minor, COALESCE(s.c, 0) FROM billing_invoice i
        LEFT JOIN (
            SELECT l.invoice_id, SUM(l.credited_net_minor + l.credited_tax_minor) AS c
            FROM billing_invoiceline l WHERE {within('l.invoice_id', INVOICES, run)}
            GROUP BY l.invoice_id) s ON s.invoice_id = i.id
        WHERE i.organization_id = %(org)s AND {within('i.id', INVOICES, run)}
          AND i.credits_minor <> COALESCE(s.c, 0)
        ORDER BY i.id""")
    for number, credits, lines_credits in rows:
        yield (f"invoice {number}: credits is {credits}, its lines' credits "
               f"add up to {lines_credits}")


@check
def sandbox_charges_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """With the sandbox gateway Kassa can see the processor's side: every charge it keeps
    (succeeded, not given back) is a succeeded payment of ours — or one whose charge is being
    given back — and every succeeded sandbox payment is such a charge. (With Stripe, the
    reconciliation report holds the same.)"""
    run = run or Run()
    if not Payment.objects.filter(organization=org, gateway="sandbox", online=True).exists():
        return  # (and the installation's key is not made for nothing)
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.status, y.gateway_reference, c.reference
        FROM billing_payment y
        LEFT JOIN gateways_sandboxcharge c
               ON c.idempotency_key = %(prefix)s || CAST(y.id AS TEXT)
              AND c.state = 'succeeded' AND NOT c.cancelled
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND y.gateway = 'sandbox' AND y.online
          AND ((y.status = 'succeeded'
                AND (c.reference IS NULL OR c.reference <> y.gateway_reference))
               OR (y.status <> 'succeeded' AND c.reference IS NOT NULL
                   AND y.charge_state NOT IN ('give_back', 'stuck')))
        ORDER BY y.id""", {"prefix": f"kassa-{installation_key()}-payment-"})
    for pk, status, gateway_reference, charge in rows:
        if status == PaymentStatus.SUCCEEDED:
            yield (f"payment {pk} succeeded, but the sandbox keeps no charge "
                   f"{gateway_reference or '(none recorded)'} for it")
        else:
            yield (f"payment {pk} is {status}, yet the sandbox keeps its charge "
                   f"{charge} and nothing gives it back")


@check
def customers_credit_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """A customer's credit is the sum of their credit entries and minus their customer_credit
    sub-ledger, and never below zero."""
    run = run or Run()
    rows = each(org, CUSTOMERS, run, f"""
        SELECT c.id, c.name, c.credit_minor, COALESCE(e.held, 0), -COALESCE(l.held, 0)
        FROM billing_customer c
        LEFT JOIN (
            SELECT e.customer_id, SUM(e.amount_minor) AS held FROM billing_creditentry e
            WHERE e.organization_id = %(org)s AND {within('e.customer_id', CUSTOMERS, run)}
            GROUP BY e.customer_id) e ON e.customer_id = c.id
        LEFT JOIN (
            SELECT p.customer_id, SUM(p.amount_minor) AS held FROM ledger_posting p
            WHERE p.code = 'customer_credit' AND p.organization_id = %(org)s
              AND {within('p.customer_id', CUSTOMERS, run)}
            GROUP BY p.customer_id) l ON l.customer_id = c.id
        WHERE c.organization_id = %(org)s AND {within('c.id', CUSTOMERS, run)}
          AND (c.credit_minor <> COALESCE(e.held, 0) OR c.credit_minor <> -COALESCE(l.held, 0)
               OR c.credit_minor < 0)
        ORDER BY c.id""")
    for pk, name, held, entries, ledger in rows:
        who = f"customer {name} (id {pk})"
        if held != entries:
            yield f"{who}: credit is {held}, their credit entries add up to {entries}"
        if held != ledger:
            yield f"{who}: credit is {held}, the customer_credit sub-ledger says {ledger}"
        if held < 0:
            yield f"{who}: credit is {held}, below zero"


@check
def credit_lots_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """Each credit entry moved of its lots what it says, no lot holds less than nothing, and
    each entry's balance after is the customer's running balance."""
    run = run or Run()
    drawn = each(org, CUSTOMERS, run, f"""
        SELECT e.id, e.customer_id, e.amount_minor, COALESCE(SUM(d.amount_minor), 0)
        FROM billing_creditentry e
        LEFT JOIN billing_creditdraw d ON d.entry_id = e.id
        WHERE e.organization_id = %(org)s AND {within('e.customer_id', CUSTOMERS, run)}
        GROUP BY e.id, e.customer_id, e.amount_minor
        HAVING e.amount_minor <> COALESCE(SUM(d.amount_minor), 0)
        ORDER BY e.id""")
    for pk, customer_id, amount, moved in drawn:
        yield (f"credit entry {pk} of customer {customer_id}: amount {amount}, its lots moved "
               f"{moved}")
    below = each(org, CUSTOMERS, run, f"""
        SELECT l.id, l.customer_id, SUM(d.amount_minor)
        FROM billing_creditentry l JOIN billing_creditdraw d ON d.lot_id = l.id
        WHERE l.organization_id = %(org)s AND {within('l.customer_id', CUSTOMERS, run)}
        GROUP BY l.id, l.customer_id HAVING SUM(d.amount_minor) < 0
        ORDER BY l.id""")
    for pk, customer_id, left in below:
        yield f"credit lot {pk} of customer {customer_id} holds {left}, below zero"
    running = each(org, CUSTOMERS, run, f"""
        SELECT id, customer_id, balance_after_minor, running FROM (
            SELECT e.id, e.customer_id, e.balance_after_minor,
                   SUM(e.amount_minor) OVER (PARTITION BY e.customer_id ORDER BY e.id
                                             ROWS UNBOUNDED PRECEDING) AS running
            FROM billing_creditentry e
            WHERE e.organization_id = %(org)s AND {within('e.customer_id', CUSTOMERS, run)}
        ) r WHERE balance_after_minor <> running ORDER BY id""")
    for pk, customer_id, after, total in running:
        yield (f"credit entry {pk} of customer {customer_id}: balance after is {after}, the "
               f"entries up to it add up to {total}")


@check
def intercenter_nets_to_zero(org: Organization, run: Run | None = None) -> Iterable[str]:
    """Credit taken at one center and used at another is cleared through `intercenter`: over
    the organization it sums to zero."""
    ((total,),) = fetch("SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_posting "
                        "WHERE organization_id = %(org)s AND code = 'intercenter'",
                        {"org": org.pk})
    if total:
        yield f"intercenter sums to {total} over the organization, not 0"


@check
def credit_postings_name_their_customer(org: Organization, run: Run | None = None,
                                        ) -> Iterable[str]:
    """Every posting to customer_credit names the customer whose credit it moves (else it
    would be in no one's sub-ledger)."""
    rows = fetch("SELECT entry_id, amount_minor FROM ledger_posting WHERE organization_id = "
                 "%(org)s AND code = 'customer_credit' AND customer_id IS NULL ORDER BY id",
                 {"org": org.pk})
    for entry_id, amount in rows:
        yield f"entry {entry_id}: a customer_credit posting of {amount} names no customer"


@check
def payments_credit_agree(org: Organization, run: Run | None = None) -> Iterable[str]:
    """What a payment put into credit (all of a deposit, an overpayment's excess) is what its
    credit entries brought in: its to_credit while it stands, nothing once it failed."""
    run = run or Run()
    rows = each(org, PAYMENTS, run, f"""
        SELECT y.id, y.status, y.to_credit_minor, COALESCE(e.brought, 0)
        FROM billing_payment y LEFT JOIN (
            SELECT e.payment_id, SUM(e.amount_minor) AS brought FROM billing_creditentry e
            WHERE e.organization_id = %(org)s
              AND e.kind IN ('deposit', 'overpayment', 'payment_failed')
              AND {within('e.payment_id', PAYMENTS, run)}
            GROUP BY e.payment_id) e ON e.payment_id = y.id
        WHERE y.organization_id = %(org)s AND {within('y.id', PAYMENTS, run)}
          AND COALESCE(e.brought, 0) <> CASE WHEN y.status = %(succeeded)s
                                             THEN y.to_credit_minor ELSE 0 END
        ORDER BY y.id""", {"succeeded": PaymentStatus.SUCCEEDED.value})
    for pk, status, to_credit, brought in rows:
        yield (f"payment {pk} ({status}): {to_credit} of it went into credit, its credit "
               f"entries brought in {brought}")
