"""Splitting an amount over buckets pro rata, exactly.

A payment on an invoice is allocated to its lines pro rata to what each still owes, net and tax
apart: each line contributes two buckets (its net owed, its tax owed), and every bucket gets the
same fraction of what it owes. The rule for the cents that do not divide:

    each bucket first gets floor(amount × owed / total owed); the cents left over (fewer than
    the number of buckets) go one at a time to the buckets that owe the most, ties to the
    earlier line and to net before tax, never past what a bucket owes.

The result is exact (its sum is the amount), deterministic and never pays a bucket more than it
owes. A refund of a payment is the same split taken back out of what the payment allocated.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def split_pro_rata(amount: int, weights: Sequence[tuple[Hashable, int]]) -> dict[Hashable, int]:
    """Split `amount` minor units over `weights` (key, capacity ≥ 0) in proportion to capacity.

    `amount` may not exceed the total capacity. Keys keep their order for tie-breaking.
    """
    total = sum(w for _, w in weights)
    assert amount >= 0 and all(w >= 0 for _, w in weights)
    assert amount <= total, f"cannot split {amount} over a capacity of {total}"
    if amount == 0:
        return {key: 0 for key, _ in weights}
    shares = {key: amount * w // total for key, w in weights}
    left = amount - sum(shares.values())
    # Largest owed first; Python's sort is stable, so ties keep the given order.
    order = sorted(range(len(weights)), key=lambda i: -weights[i][1])
    while left:
        for i in order:
            key, w = weights[i]
            if left and shares[key] < w:
                shares[key] += 1
                left -= 1
    assert sum(shares.values()) == amount
    return shares
