"""RecipientSet against a Python set: the same first occurrences, chunk by chunk, exactly."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_sms.campaign.dedup import RecipientSet


def _reference(chunks: list[list[str]]) -> list[list[bool]]:
    seen: set[str] = set()
    answers = []
    for chunk in chunks:
        answer = []
        for recipient in chunk:
            answer.append(recipient not in seen)
            seen.add(recipient)
        answers.append(answer)
    return answers


def _check(chunks: list[list[str]]) -> RecipientSet:
    recipients = RecipientSet()
    assert [recipients.first_seen(chunk) for chunk in chunks] == _reference(chunks)
    assert len(recipients) == len({r for chunk in chunks for r in chunk})
    return recipients


# Numbers from a small pool, so that chunks repeat each other and themselves; and texts that are
# not canonical E.164 (a leading zero, no "+", non-ASCII digits, too long), which must stay distinct
# from the numbers they resemble.
E164 = st.integers(min_value=1, max_value=60).map(lambda n: f"+49151{n:08d}")
ODD = st.sampled_from(
    [
        "+04915100000001",
        "4915100000001",
        "+٤٩١٥١",
        "+1234567890123456789",
        "+123456789012345678",
        "+",
        "",
        "+49 151",
        "x",
        "+4915100000001\x00",
        "+49151\x0000000001",
        "+4915100000001 ",
        "++4915100000001",
    ]
)
WIDE = st.integers(min_value=1, max_value=999_999_999_999_999_999).map(lambda n: f"+{n}")
RECIPIENT = st.one_of(E164, E164, WIDE, ODD)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(RECIPIENT, max_size=40), max_size=30))
def test_first_seen_matches_a_set_on_random_streams(chunks):
    recipients = _check(chunks)
    for chunk in chunks:
        for recipient in chunk:
            assert recipient in recipients
    assert "+49151999999999" not in recipients and 4915100000001 not in recipients


def test_many_chunks_with_duplicates_across_them_merge_runs_exactly():
    rng = random.Random(20)
    pool = [f"+{rng.randrange(10**7, 10**15)}" for _ in range(150_000)]
    chunks = []
    for _ in range(300):  # 300k rows: about a third of them repeat an earlier row, near or far
        chunks.append(
            [pool[rng.randrange(len(pool))] if rng.random() < 0.5 else pool.pop() for _ in range(1000)]
        )
    recipients = _check(chunks)
    # About 8 bytes per recipient, in at most log2(n) sorted, disjoint runs per partition.
    assert recipients.nbytes == 8 * len(recipients)
    for runs in recipients._runs:
        merged = np.concatenate(runs) if runs else np.array([], dtype=np.int64)
        assert len(runs) <= max(1, int(np.log2(max(merged.size, 1))) + 1)
        assert all((np.diff(run) > 0).all() for run in runs)
        assert np.unique(merged).size == merged.size


def test_a_number_and_its_look_alikes_are_different_recipients():
    chunk = ["+4915100000001", "+04915100000001", "4915100000001", "+٤٩١٥١٠٠٠٠٠٠٠١", "+4915100000001"]
    assert RecipientSet().first_seen(chunk) == [True, True, True, True, False]
    assert RecipientSet().first_seen(["+1", "+1\x00", "+", ""]) == [True, True, True, True]
    assert RecipientSet().first_seen(["", "+", ""]) == [True, True, False]
    long = "+" + "4" * 10_000  # not a number; nor does it widen the chunk's matrix to 10,000 columns
    assert RecipientSet().first_seen(["+44", long, "+44", long, "+" + "4" * 19]) == [
        True,
        True,
        False,
        False,
        True,
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="+0123456789٤ \x00x", max_size=20), max_size=20), max_size=10))
def test_first_seen_matches_a_set_on_arbitrary_texts(chunks):
    _check(chunks)


def test_an_empty_chunk_changes_nothing():
    recipients = RecipientSet()
    assert recipients.first_seen([]) == []
    assert recipients.first_seen(["+12025550100"]) == [True]
    assert recipients.first_seen([]) == [] and len(recipients) == 1
