"""Read-ahead: produce the next item in a background thread while the caller works on this one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_END = object()
PREFETCH_THREAD = "sms-prefetch"


def prefetched(items: Iterable[T], transform: Callable[[T], R] | None = None) -> Iterator[R]:
    """``transform(item)`` (or the item) for each item, one item ahead of the consumer.

    A bulk send spends much of its wall time waiting for the gateway or the database, a report the
    other way round; reading (and preparing) the next chunk meanwhile hides that work. Everything that touches ``items`` (and so
    any database connection behind it) runs in the same single worker thread; its exceptions are
    raised to the consumer in order, and closing the iterator early closes ``items`` there too.
    """
    iterator = iter(items)

    def produce() -> object:
        item = next(iterator, _END)
        return item if item is _END or transform is None else transform(item)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=PREFETCH_THREAD) as pool:
        ahead = pool.submit(produce)
        try:
            while True:
                value = ahead.result()
                if value is _END:
                    return
                ahead = pool.submit(produce)
                yield value  # type: ignore[misc]
        finally:
            ahead.cancel()
            close = getattr(iterator, "close", None)
            if close is not None:
                # After the pending item (if any) is done: a generator runs in one thread at a time.
                pool.submit(close).result()
