"""``OrderedRows`` reads by position exactly what a plain dict holds, in the dict's own order, after
any sequence of the dict's mutators."""

from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest

from airflow_provider_sms.sandbox.ordered import OrderedRows, SortedRows


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


# ---------------------------------------------------------------------------------------------------
# SortedRows: what sorting a plain list by the key gives, after any adds, removals, loads and clears


@pytest.mark.parametrize("seed", range(12))
def test_sorted_rows_read_what_a_sorted_list_holds(seed: int) -> None:
    rng = random.Random(seed)
    rows: SortedRows[tuple[float, int]] = SortedRows(lambda value: value)
    reference: list[tuple[float, int]] = []
    serial = 0
    for _ in range(500):
        op = rng.choice(
            ["add"] * 8 + ["remove", "remove_missing", "load"] + ["clear"] * (rng.random() < 0.05)
        )
        if op == "add":
            serial += 1
            # Mostly after the last (as replies arrive), sometimes before; few distinct times: ties.
            last = reference[-1][0] if reference else 0.0
            at = last + rng.choice([0, 0, 1]) if rng.random() < 0.7 else float(rng.randrange(-3, 8))
            rows.add((at, serial))
            reference.append((at, serial))
        elif op == "remove" and reference:
            value = rng.choice(reference)
            assert rows.remove(value)
            reference.remove(value)
        elif op == "remove_missing":
            assert not rows.remove((0.25, -1))
        elif op == "load":
            rng.shuffle(reference)
            rows.load(reference)
        elif op == "clear":
            rows.clear()
            reference.clear()
        reference.sort()
        assert len(rows) == len(reference)
        if rng.random() < 0.3:
            assert list(rows) == reference
            bound = rng.uniform(-4, 10)
            assert rows.count_below((bound, math.inf)) == sum(at <= bound for at, _ in reference)
            low, high = sorted(float(rng.randrange(-4, 10)) for _ in range(2))
            within = [value for value in reference if low <= value[0] <= high]
            assert list(rows.between((low, -math.inf), (high, math.inf))) == within
            assert list(rows.between(None, (high, math.inf))) == [v for v in reference if v[0] <= high]
            assert list(rows.between((high, -math.inf), (low, -math.inf))) == []  # an empty range
            start, stop = rng.randrange(-2, len(reference) + 3), rng.randrange(-2, len(reference) + 3)
            window = rows.window(start, stop)
            expected = reference[max(start, 0) : max(stop, 0)]
            assert list(window) == expected and len(window) == len(expected)
            for _ in range(3):
                a, b = rng.randrange(-5, len(expected) + 5), rng.randrange(-5, len(expected) + 5)
                assert window[a:b] == expected[a:b] and window[a:b:2] == expected[a:b:2]
            for position in (-len(expected) - 1, -1, 0, len(expected)):
                if -len(expected) <= position < len(expected):
                    assert window[position] == expected[position]
                else:
                    with pytest.raises(IndexError):
                        window[position]
