"""`kassa verify`: prove that the books balance and that every stored figure is what the ledger
says.

The ledger's own check (every entry sums to zero, every posting's copied fields agree with its
entry and account) lives here; each domain app registers the checks of its own figures with
`@check` in its `checks.py` (imported when the app is ready). A check yields one line per
discrepancy, naming the object, the figure, what is stored and what the ledger says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.db.models import F, Q, Sum

from kassa.ledger.models import JournalEntry, Posting
from kassa.tenancy.models import Organization

Check = Callable[[Organization], Iterable[str]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


@check
def entries_balance(org: Organization) -> Iterable[str]:
    unbalanced = (
        Posting.objects.filter(organization=org).values("entry_id")
        .annotate(total=Sum("amount_minor")).exclude(total=0)
    )
    for row in unbalanced[:100]:
        yield f"journal entry {row['entry_id']}: postings sum to {row['total']}, not 0"
    empty = JournalEntry.objects.filter(organization=org, postings__isnull=True)
    for entry_id in empty.values_list("id", flat=True)[:100]:
        yield f"journal entry {entry_id}: has no postings"


@check
def postings_agree_with_entries(org: Organization) -> Iterable[str]:
    wrong = Posting.objects.filter(organization=org).filter(
        ~Q(center_id=F("entry__center_id")) | ~Q(business_date=F("entry__business_date"))
        | ~Q(code=F("account__code")) | ~Q(center_id=F("account__center_id"))
    )
    for posting_id in wrong.values_list("id", flat=True)[:100]:
        yield f"posting {posting_id}: center, day or account code differs from its entry"


def verify(organization: Organization | None = None) -> list[str]:
    organizations = [organization] if organization else list(Organization.objects.order_by("id"))
    problems: list[str] = []
    for org in organizations:
        for fn in CHECKS:
            problems.extend(f"organization {org.pk}: {line}" for line in fn(org))
    return problems
