"""``OrderedRows`` reads by position exactly what a plain dict holds, in the dict's own order, after
any sequence of the dict's mutators."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from airflow_provider_sms.sandbox.ordered import OrderedRows


def _mutate(rng: random.Random, rows: OrderedRows[str, float], reference: dict[str, float]) -> None:
    """One random mutation, applied alike to ``rows`` and to the plain ``reference``."""
    keys = list(reference)
    op = rng.choice(
        ["new"] * 8 + ["replace", "del", "pop", "pop_missing", "popitem", "setdefault", "update", "ior"]
        + ["clear"] * (rng.random() < 0.05)
    )  # fmt: skip
    key = f"k{rng.randrange(400)}"
    # Mostly rising order keys, sometimes one from the past (as after restoring a state file).
    value = len(reference) + rng.random() if rng.random() < 0.9 else rng.uniform(-50, 50)
    if op == "new" or (not keys and op in ("replace", "del", "pop", "popitem")):
        rows[key] = reference[key] = value
    elif op == "replace":
        key = rng.choice(keys)
        rows[key] = reference[key] = value
    elif op == "del":
        key = rng.choice(keys)
        del rows[key]
        del reference[key]
    elif op == "pop":
        key = rng.choice(keys)
        assert rows.pop(key) == reference.pop(key)
    elif op == "pop_missing":
        assert rows.pop("absent", None) is None
        with pytest.raises(KeyError):
            rows.pop("absent")
    elif op == "popitem":
        assert rows.popitem() == reference.popitem()
    elif op == "setdefault":
        assert rows.setdefault(key, value) == reference.setdefault(key, value)
    elif op == "update":
        batch = {f"k{rng.randrange(400)}": value + i for i in range(rng.randrange(4))}
        rows.update(batch)
        reference.update(batch)
    elif op == "ior":
        batch = {f"k{rng.randrange(400)}": value}
        rows |= batch
        reference |= batch
    else:
        rows.clear()
        reference.clear()


def _check(rng: random.Random, rows: OrderedRows[str, float], reference: dict[str, float]) -> None:
    keys, values = list(reference), list(reference.values())
    assert list(dict.keys(rows)) == keys  # the dict itself is untouched by the index
    view = rows.in_order()
    assert len(view) == len(values) and list(view) == values
    for _ in range(3):
        start, stop = sorted(rng.randrange(-5, len(keys) + 5) for _ in range(2))
        assert rows.values_between(start, stop) == values[start:stop]
        assert view[start:stop] == values[start:stop]
    if values:
        position = rng.randrange(-len(values), len(values))
        assert view[position] == values[position]
    low, high = sorted(rng.uniform(-60, len(values) + 5) for _ in range(2))
    expected = [value for value in values if low <= value <= high]
    within = rows.between(low if rng.random() < 0.8 else None, high if rng.random() < 0.8 else None)
    assert [value for value in within if low <= value <= high] == expected or rows.monotone() is False
    monotone = all(a <= b for a, b in pairwise(values))
    assert rows.monotone() == monotone
    if monotone:  # bisection: exactly the range, nothing to filter
        assert list(rows.between(low, high)) == expected
        assert list(rows.between(None, high)) == [value for value in values if value <= high]
        assert list(rows.between(low)) == [value for value in values if value >= low]
    else:  # every value, for the caller to filter
        assert list(rows.between(low, high)) == values


@pytest.mark.parametrize("seed", range(12))
def test_positions_match_a_plain_dict_after_random_mutations(seed: int) -> None:
    rng = random.Random(seed)
    rows: OrderedRows[str, float] = OrderedRows(order_key=float)
    reference: dict[str, float] = {}
    for _ in range(600):
        _mutate(rng, rows, reference)
        if rng.random() < 0.3:
            _check(rng, rows, reference)
    _check(rng, rows, reference)


def test_epoch_changes_on_removal_and_replacement_but_not_on_append() -> None:
    rows: OrderedRows[str, int] = OrderedRows({"a": 1})
    epoch = rows.epoch
    rows["b"] = 2
    assert rows.epoch == epoch
    rows["a"] = 3
    assert rows.epoch == epoch + 1
    rows.pop("b")
    assert rows.epoch == epoch + 2
    rows.clear()
    assert rows.epoch == epoch + 3 and rows.values_between(0, 10) == []


def test_without_an_order_key_between_is_everything() -> None:
    rows = OrderedRows({"a": 3, "b": 1})
    assert rows.monotone() is False and list(rows.between(2, 2)) == [3, 1]
