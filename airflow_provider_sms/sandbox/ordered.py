"""Rows in insertion order that can be read by position: a page of a list costs its size, not its offset.

A dict keeps insertion order but reaches its n-th item only by walking past n items, which made
page 500 of a 1M-message listing twice as slow as page 1. ``OrderedRows`` is a dict that also keeps
its values in a list, so a window of positions is a slice. ``SortedRows`` keeps values sorted by a
key instead (replies by arrival, which is not the order they are stored in), so a range of keys is
found by bisection and a window of it is a slice too.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort_right
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class OrderedRows(dict[K, V]):
    """A dict whose values can also be read by position, in insertion order (the dict's own order).

    Adding a key appends its value to a list kept beside the dict: the values, not the keys, since
    looking a million keys up again costs a random memory access each, a slice of values none.
    Removing a key or replacing its value (rare here: a cancelled message, a deleted contact) only
    marks the list stale; the next read by position rebuilds it from the dict in one C-speed pass
    (a few ms per million values). Every mutating dict method goes through these overrides, so
    code that writes ``rows[key] = row`` keeps the list right.

    ``order_key`` (e.g. a message's creation time) lets :meth:`between` find a range by bisection
    as long as the values were added in non-decreasing order of it; otherwise it says so.
    """

    __slots__ = ("_last", "_monotone", "_order_key", "_stale", "_values", "epoch")

    def __init__(
        self, items: Mapping[K, V] | Iterable[tuple[K, V]] = (), order_key: Callable[[V], Any] | None = None
    ) -> None:
        super().__init__()
        self._values: list[V] = []
        self._stale = False
        self._order_key = order_key
        self._monotone: bool | None = True  # None: unknown until computed
        self._last: Any = None
        # Bumped whenever a key is removed or its value replaced (appends leave it), so a cache
        # built by reading the rows in order knows when it must start again.
        self.epoch = 0
        self.update(items)

    # ------------------------------------------------------------------ the dict's mutators
    def __setitem__(self, key: K, value: V) -> None:
        if dict.__contains__(self, key):
            self._stale = True
            self.epoch += 1
            if self._order_key is not None:
                self._monotone = None
        else:
            if not self._stale:
                self._values.append(value)
            if self._order_key is not None and self._monotone:
                rank = self._order_key(value)
                if self._last is not None and rank < self._last:
                    # Perhaps out of order, perhaps only below a value since removed: recheck lazily.
                    self._monotone = None
                self._last = rank
        dict.__setitem__(self, key, value)

    def _removed(self) -> None:
        self._stale = True
        self.epoch += 1
        if self._order_key is not None and self._monotone is False:
            self._monotone = None  # removing values may have restored the order

    def __delitem__(self, key: K) -> None:
        dict.__delitem__(self, key)
        self._removed()

    _MISSING: Any = object()

    def pop(self, key: K, default: Any = _MISSING) -> Any:  # type: ignore[override]
        if dict.__contains__(self, key):
            value = dict.pop(self, key)
            self._removed()
            return value
        if default is OrderedRows._MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[K, V]:
        item = dict.popitem(self)
        self._removed()
        return item

    def clear(self) -> None:
        dict.clear(self)
        self._values = []
        self._stale = False
        self._monotone = True
        self._last = None
        self.epoch += 1

    def setdefault(self, key: K, default: Any = None) -> Any:
        if not dict.__contains__(self, key):
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> OrderedRows[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    # ------------------------------------------------------------------ reads by position
    def _ordered(self) -> list[V]:
        if self._stale:
            self._values = list(dict.values(self))
            self._stale = False
        return self._values

    def values_between(self, start: int, stop: int) -> list[V]:
        """The values at positions ``start`` to ``stop`` (as a slice: clamped, negatives from the end)."""
        return self._ordered()[start:stop]

    def in_order(self) -> InOrder[V]:
        """The values as a read-only sequence in insertion order (a view, not a copy)."""
        return InOrder(self)

    def monotone(self) -> bool:
        """Whether the values were added in non-decreasing ``order_key`` order (rechecked in one
        pass after a removal or a replacement)."""
        if self._order_key is None:
            return False
        if self._monotone is None:
            key, last, ordered = self._order_key, None, True
            for value in dict.values(self):
                rank = key(value)
                if last is not None and rank < last:
                    ordered = False
                    break
                last = rank
            self._monotone = ordered
            self._last = key(self._ordered()[-1]) if self else None
        return self._monotone

    def between(self, low: Any = None, high: Any = None) -> Sequence[V]:
        """The values whose ``order_key`` is ``>= low`` and ``<= high`` (None: unbounded), found by
        bisection, in insertion order; all values (for the caller to filter) when they were not
        added in ``order_key`` order."""
        values = self.in_order()
        if not self.monotone():
            return values
        key = self._order_key
        start = 0 if low is None else bisect_left(values, low, key=key)
        stop = len(values) if high is None else bisect_right(values, high, key=key)
        return values[start:stop]


class InOrder(Sequence[T], Generic[T]):
    """A read-only sequence over an ``OrderedRows``' values in order: indexing and slicing cost the
    size of the answer, not the position."""

    __slots__ = ("_rows",)

    def __init__(self, rows: OrderedRows[Any, T]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[T]:
        return iter(dict.values(self._rows))

    @overload
    def __getitem__(self, position: int) -> T: ...

    @overload
    def __getitem__(self, position: slice) -> list[T]: ...

    def __getitem__(self, position: int | slice) -> T | list[T]:
        return self._rows._ordered()[position]


class SortedRows(Generic[T]):
    """Values kept sorted by ``sort_key`` (e.g. a reply's ``(received_at, seq)``): a range of keys is
    found by bisection, a window of positions is a slice.

    Values arrive mostly in key order (a simulated reply arrives after the ones before it), so an
    insertion moves at most the few values after it; ``load`` sorts a whole batch at once (a state
    file gives its rows back in any order). ``sort_key`` must be unique per value and fixed for its
    lifetime: :meth:`remove` finds a value by it.
    """

    __slots__ = ("_key", "_values")

    def __init__(self, sort_key: Callable[[T], Any]) -> None:
        self._key = sort_key
        self._values: list[T] = []

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[T]:
        return iter(self._values)

    def add(self, value: T) -> None:
        values = self._values
        if not values or self._key(values[-1]) <= self._key(value):
            values.append(value)
        else:
            insort_right(values, value, key=self._key)

    def load(self, values: Iterable[T]) -> None:
        """Replace the contents by ``values`` (in any order)."""
        self._values = sorted(values, key=self._key)

    def remove(self, value: T) -> bool:
        """Remove ``value`` (the one with its key); whether it was there."""
        values, key = self._values, self._key(value)
        position = bisect_left(values, key, key=self._key)
        if position < len(values) and self._key(values[position]) == key:
            del values[position]
            return True
        return False

    def clear(self) -> None:
        self._values = []

    def count_below(self, bound: Any) -> int:
        """How many keys are ``<= bound``."""
        return bisect_right(self._values, bound, key=self._key)

    def window(self, start: int = 0, stop: int | None = None) -> Window[T]:
        """Positions ``start`` to ``stop`` (clamped, like a slice with non-negative bounds) as a
        read-only sequence: a view, valid until the next change."""
        size = len(self._values)
        stop = size if stop is None else min(max(stop, 0), size)
        return Window(self._values, min(max(start, 0), stop), stop)

    def between(self, low: Any = None, high: Any = None) -> Window[T]:
        """The values whose key is ``>= low`` and ``<= high`` (None: unbounded), by bisection."""
        values, key = self._values, self._key
        start = 0 if low is None else bisect_left(values, low, key=key)
        stop = len(values) if high is None else bisect_right(values, high, key=key)
        return self.window(start, max(start, stop))


class Window(Sequence[T], Generic[T]):
    """Positions ``start`` to ``stop`` of a list as a read-only sequence: indexing and slicing cost
    the size of the answer, not the position."""

    __slots__ = ("_positions", "_values")

    def __init__(self, values: list[T], start: int, stop: int) -> None:
        self._values = values
        self._positions = range(start, stop)

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Iterator[T]:
        return iter(self._values[self._positions.start : self._positions.stop])  # a C copy beats a walk

    @overload
    def __getitem__(self, position: int) -> T: ...

    @overload
    def __getitem__(self, position: slice) -> list[T]: ...

    def __getitem__(self, position: int | slice) -> T | list[T]:
        chosen = self._positions[position]  # an IndexError, or the positions in the list
        if isinstance(chosen, int):
            return self._values[chosen]
        if chosen.step == 1:
            return self._values[chosen.start : chosen.stop]
        return [self._values[at] for at in chosen]
