-- The bare SQL refund, the anchor of `python -m bench --refunds` (bench/refunds.py) on pgbench:
-- one offline refund of 0.01 of a cash payment, in Kassa's real columns (NOT NULLs included)
-- and in Kassa's order: the payment locked, the entry first so that the refund is inserted
-- pointing at it, the two postings (receivable +1, cash -1: they balance, as the deferred
-- trigger checks at COMMIT), the payment's figure, the receipt in the outbox.
-- Variables (-D): org, user, pmin, pmax (the payments' ids), cash, receivable (account ids).
\set p random(:pmin, :pmax)
BEGIN;
SELECT invoice_id, center_id FROM billing_payment
  WHERE organization_id = :org AND id = :p FOR UPDATE \gset
INSERT INTO ledger_journalentry (organization_id, center_id, kind, memo, business_date,
    created_at, created_by_id, reverses_id)
  VALUES (:org, :center_id, 'refund_recorded', 'Refund of payment ' || :p || ': bench',
    current_date, now(), :user, NULL)
  RETURNING id AS entry \gset
INSERT INTO refunds_refund (organization_id, center_id, invoice_id, payment_id, package_id,
    close_package, type, status, amount_minor, tax_minor, method, reason, internal_note, note,
    decrease_balance_owed, credit_net_minor, credit_tax_minor, created_by_id, created_at,
    settled_at, failure_reason, gateway, gateway_reference, gateway_state, attempts,
    next_attempt_at, last_error, keyed_by_installation, request_key, issue_entry_id,
    settle_entry_id, from_credit, payee, override_reason, split_group, origin)
  VALUES (:org, :center_id, :invoice_id, :p, NULL, false, 'offline', 'recorded', 1, 0, 'cash',
    'bench', '', '', false, 0, 0, :user, now(), NULL, '', '', '', '', 0, NULL, '', true, '',
    :entry, NULL, false, '', '', '', 'kassa')
  RETURNING id AS refund \gset
INSERT INTO ledger_posting (entry_id, account_id, organization_id, center_id, code, kind,
    business_date, amount_minor, invoice_id, payment_id, refund_id, package_id)
  VALUES (:entry, :receivable, :org, :center_id, 'receivable', 'refund_recorded', current_date,
    1, :invoice_id, :p, :refund, NULL);
INSERT INTO ledger_posting (entry_id, account_id, organization_id, center_id, code, kind,
    business_date, amount_minor, invoice_id, payment_id, refund_id, package_id)
  VALUES (:entry, :cash, :org, :center_id, 'cash', 'refund_recorded', current_date,
    -1, :invoice_id, :p, :refund, NULL);
UPDATE billing_payment SET refunded_minor = refunded_minor + 1
  WHERE organization_id = :org AND id = :p;
INSERT INTO refunds_receipt (organization_id, refund_id, kind, to_email, status, attempts,
    next_attempt_at, claimed_at, sent_at, last_error)
  VALUES (:org, :refund, 'receipt', 'bench@example.com', 'pending', 0, now(), NULL, NULL, '');
COMMIT;
