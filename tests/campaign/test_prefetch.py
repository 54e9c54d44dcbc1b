from __future__ import annotations

import threading

import pytest

from airflow_provider_sms.campaign.prefetch import prefetched


def test_items_come_in_order_transformed_one_ahead():
    produced: list[int] = []

    def source():
        for i in range(5):
            produced.append(i)
            yield i

    out = []
    for value in prefetched(source(), lambda i: i * 10):
        out.append(value)
        # The consumer holds item n while item n+1 is (being) prepared, never further ahead.
        assert len(produced) <= len(out) + 1
    assert out == [0, 10, 20, 30, 40]


def test_the_source_runs_in_one_thread_that_is_not_the_consumers():
    # sqlite3 connections (an audience read from SQLite) refuse to be used from another thread.
    threads: set[int] = set()

    def source():
        for i in range(4):
            threads.add(threading.get_ident())
            yield i

    assert list(prefetched(source(), lambda i: threading.get_ident())) != []
    assert len(threads) == 1
    assert threading.get_ident() not in threads


def test_an_error_while_preparing_reaches_the_consumer_after_the_items_before_it():
    def boom(i: int) -> int:
        if i == 2:
            raise ValueError("row 2 is bad")
        return i

    got = []
    with pytest.raises(ValueError, match="row 2 is bad"):
        for value in prefetched(range(5), boom):
            got.append(value)
    assert got == [0, 1]


def test_stopping_early_closes_the_source_in_its_own_thread():
    closed_in: list[int] = []
    started: list[int] = []

    def source():
        started.append(threading.get_ident())
        try:
            yield from range(100)
        finally:
            closed_in.append(threading.get_ident())

    items = prefetched(source(), lambda i: i)
    assert next(items) == 0
    items.close()
    assert closed_in == started  # closed, and by the thread that ran it


def test_a_consumer_error_stops_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(100)
        finally:
            closed.set()

    with pytest.raises(RuntimeError):
        for _ in prefetched(source(), lambda i: i):
            raise RuntimeError("the gateway is down")
    assert closed.is_set()
