"""What the bank or the processor took back of a payment, decided outside Kassa: the payment's
`taken_back` (its lost disputes and its return) and `disputed` (a dispute open, or lost and not
settled), derived here from the Dispute and PaymentReturn rows and nowhere else, under the
payment's lock that the caller holds. `kassa verify` holds both against the same rows.

A payment's refundable is then its amount less its refunds, what went into credit and what was
taken back: money a chargeback or a returned check took is not Kassa's to refund.
"""

from __future__ import annotations

from django.db.models import Q, Sum

from kassa.billing.models import Payment
from kassa.refunds.models import OPEN_DISPUTE, Dispute, DisputeStatus, PaymentReturn, Settlement

# The disputes that hold a payment's refunds: open, or lost and not settled.
HOLDING = Q(status__in=OPEN_DISPUTE) | Q(status=DisputeStatus.LOST, settlement=Settlement.NONE)


def refresh(payment: Payment) -> None:
    lost = (Dispute.objects.filter(payment=payment, status=DisputeStatus.LOST)
            .aggregate(s=Sum("amount_minor"))["s"] or 0)
    returned = (PaymentReturn.objects.filter(payment=payment)
                .aggregate(s=Sum("amount_minor"))["s"] or 0)
    payment.taken_back_minor = min(int(lost) + int(returned), payment.amount_minor)
    payment.disputed = Dispute.objects.filter(HOLDING, payment=payment).exists()
    payment.save(update_fields=["taken_back_minor", "disputed"])
