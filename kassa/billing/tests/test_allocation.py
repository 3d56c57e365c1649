"""split_pro_rata: exact, never past a bucket's capacity, and the documented remainder rule —
floor shares first, then the cents left over one at a time to the buckets that owe the most,
ties to the earlier bucket (earlier line, net before tax)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kassa.billing.allocation import split_pro_rata


def test_an_even_split_needs_no_rounding():
    assert split_pro_rata(50, [("a", 60), ("b", 40)]) == {"a": 30, "b": 20}


def test_the_remainder_cent_goes_to_the_bucket_that_owes_most():
    # 10 over 60/30/10: exact shares 6.0/3.0/1.0 → no remainder
    assert split_pro_rata(10, [("a", 10), ("b", 30), ("c", 60)]) == {"a": 1, "b": 3, "c": 6}
    # 1 over 30/70: floors 0/0, the cent to b, which owes most though it comes second
    assert split_pro_rata(1, [("a", 30), ("b", 70)]) == {"a": 0, "b": 1}
    # 10 over 10/5/5: floors 5/2/2 (5.0, 2.5, 2.5); the cent goes to a, the largest debt,
    # not to one of the two halves: the rule is "owes most", not "largest remainder"
    assert split_pro_rata(10, [("a", 10), ("b", 5), ("c", 5)]) == {"a": 6, "b": 2, "c": 2}


def test_a_tie_goes_to_the_earlier_bucket():
    assert split_pro_rata(1, [("a", 50), ("b", 50)]) == {"a": 1, "b": 0}
    assert split_pro_rata(1, [("b", 50), ("a", 50)]) == {"a": 0, "b": 1}
    # a line's net before its tax when they owe the same
    weights = [((1, "net"), 7), ((1, "tax"), 7), ((2, "net"), 7), ((2, "tax"), 7)]
    assert split_pro_rata(2, weights) == {(1, "net"): 1, (1, "tax"): 1, (2, "net"): 0,
                                         (2, "tax"): 0}


def test_net_and_tax_are_paid_in_their_proportion():
    # A $100.00 facial with 8.875 % tax (8.88): paying half pays half of each
    shares = split_pro_rata(5444, [("net", 10000), ("tax", 888)])
    assert shares == {"net": 5000, "tax": 444}


def test_several_remainder_cents_go_one_each_to_the_largest_debts():
    # 3 over 1/4/3/2: floors 0/1/0/0 (0.3, 1.2, 0.9, 0.6); the two cents left go to b and c,
    # the two largest debts, whatever their fractions
    shares = split_pro_rata(3, [("a", 1), ("b", 4), ("c", 3), ("d", 2)])
    assert shares == {"a": 0, "b": 2, "c": 1, "d": 0}


def test_paying_everything_pays_each_bucket_exactly_what_it_owes():
    weights = [("a", 333), ("b", 1), ("c", 0), ("d", 9999)]
    assert split_pro_rata(10333, weights) == {"a": 333, "b": 1, "c": 0, "d": 9999}


def test_zero_splits_to_zeros_and_an_empty_bucket_gets_nothing():
    assert split_pro_rata(0, [("a", 0), ("b", 5)]) == {"a": 0, "b": 0}
    assert split_pro_rata(0, []) == {}
    assert split_pro_rata(4, [("a", 0), ("b", 5)]) == {"a": 0, "b": 4}


def test_more_than_the_capacity_is_a_bug_not_a_split():
    with pytest.raises(AssertionError):
        split_pro_rata(11, [("a", 5), ("b", 5)])
    with pytest.raises(AssertionError):
        split_pro_rata(-1, [("a", 5)])


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=12), st.data())
def test_any_split_is_exact_bounded_and_within_a_cent_of_pro_rata(capacities, data):
    total = sum(capacities)
    amount = data.draw(st.integers(0, total))
    weights = [(i, w) for i, w in enumerate(capacities)]
    shares = split_pro_rata(amount, weights)
    assert sum(shares.values()) == amount
    for i, w in weights:
        exact_floor = amount * w // total if total else 0
        assert 0 <= shares[i] <= w
        assert exact_floor <= shares[i] <= exact_floor + 1
    # the extra cents went to the largest debts: no bucket that got one owes less than a
    # bucket with a fractional share that did not
    extra = {i for i, w in weights if total and shares[i] > amount * w // total}
    passed_over = {i for i, w in weights if total and shares[i] == amount * w // total
                   and (amount * w) % total}
    for i in extra:
        for j in passed_over:
            assert capacities[i] > capacities[j] or (capacities[i] == capacities[j] and i < j)
