"""An exact set of E.164 recipients in about 8 bytes each: which recipients of a chunk are new.

A campaign counts a recipient's second row as a duplicate, however far apart the two rows are, so
it must remember every recipient it has seen. A ``set[str]`` costs about 100 MB per million; here
an E.164 number (``+`` and at most 15 digits, never a leading zero) is kept as its int64 value in
sorted numpy runs, and a chunk is checked against them with ``np.searchsorted``, all at once.

The answer is exact: no hashing that can collide, no Bloom filter (whose false positive would
silently drop a recipient). A string that is not canonical E.164 (not expected from
``normalize_phone``, but not assumed either) is kept as a string in a small set of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Spreads numbers that share a calling code over the partitions (Fibonacci hashing); only the
# partition depends on it, membership is decided by comparing the numbers themselves.
_SPREAD = np.uint64(0x9E3779B97F4A7C15)
_PARTITION_BITS = 4
_SHIFT = np.uint64(64 - _PARTITION_BITS)
_MAX_DIGITS = 18  # any 18-digit number fits an int64


def _keys(recipients: Sequence[str]) -> np.ndarray:
    """Each recipient as its int64 number, or -1 where the text is not ``+`` and 1 to 18 ASCII
    digits without a leading zero (only those map one-to-one to ints; -1 is never a number).

    Vectorised: the texts become a matrix of code points, the digits are checked and summed
    column by column (about 0.1 µs per recipient, where ``int()`` per text costs 1 µs)."""
    n = len(recipients)
    if not n:
        return np.empty(0, dtype=np.int64)
    lengths = np.fromiter(map(len, recipients), dtype=np.int64, count=n)
    longest = 1 + _MAX_DIGITS
    if lengths.max() > longest:  # no number; and one long text must not widen the whole matrix
        recipients = [r if len(r) <= longest else "" for r in recipients]
    text = np.array(recipients, dtype=str)
    width = text.dtype.itemsize // 4
    if width < 2:  # no text longer than one character: none is a number
        return np.full(n, -1, dtype=np.int64)
    codes = text.view(np.uint32).reshape(n, width)
    digits = codes[:, 1:longest].astype(np.int64) - ord("0")
    end = codes[:, 1:longest] == 0  # numpy pads shorter texts with NUL
    ok = (codes[:, 0] == ord("+")) & (digits[:, 0] >= 1) & (digits[:, 0] <= 9)
    ok &= (((digits >= 0) & (digits <= 9)) | end).all(axis=1)  # ASCII digits up to the end
    ok &= ~(end[:, :-1] & ~end[:, 1:]).any(axis=1)  # nothing after the end
    # numpy also drops a text's trailing NULs, so the lengths must match: "+1\x00" is not "+1";
    # this also rules out the long texts blanked above.
    ok &= lengths == 1 + (~end).sum(axis=1)
    keys = np.zeros(n, dtype=np.int64)
    for column in range(digits.shape[1]):
        keys = np.where(end[:, column], keys, keys * 10 + digits[:, column])
    keys[~ok] = -1
    return keys


class RecipientSet:
    """The recipients seen so far, exactly, in about 8 bytes per E.164 recipient (plus the
    transient copy of one merge, at most 1/16 of the set).

    The numbers are split into 16 partitions by a hash of their value; each partition is a list of
    sorted, disjoint int64 runs whose sizes at least halve from one to the next (a new run merges
    with the last while that is less than twice its size), so a partition of n numbers has at most
    log2(n) runs and each number is merged O(log n) times.
    """

    def __init__(self) -> None:
        self._runs: list[list[np.ndarray]] = [[] for _ in range(1 << _PARTITION_BITS)]
        self._other: set[str] = set()  # recipients that are not canonical E.164
        self._size = 0

    def __len__(self) -> int:
        return self._size + len(self._other)

    @property
    def nbytes(self) -> int:
        """Bytes held by the numeric runs (the rare non-E.164 strings not counted)."""
        return sum(run.nbytes for runs in self._runs for run in runs)

    def __contains__(self, recipient: object) -> bool:
        if not isinstance(recipient, str):
            return False
        keys = _keys([recipient])
        if keys[0] < 0:
            return recipient in self._other
        return bool(self._known(self._partition(keys)[0], keys)[0])

    def first_seen(self, recipients: Sequence[str]) -> list[bool]:
        """Add ``recipients`` (in order); for each, True where it is its first occurrence ever
        (not seen in an earlier call, nor earlier in this one), else False."""
        n = len(recipients)
        fresh = [False] * n
        keys = _keys(recipients)
        valid = np.flatnonzero(keys >= 0)
        if valid.size:
            # return_index gives each value's first position (np.unique sorts stably for it).
            unique, first = np.unique(keys[valid], return_index=True)
            new = np.ones(unique.size, dtype=bool)
            parts = self._partition(unique)
            order = np.argsort(parts, kind="stable")  # within a partition, still sorted by value
            bounds = np.searchsorted(parts[order], np.arange(len(self._runs) + 1))
            for p in range(len(self._runs)):
                at = order[bounds[p] : bounds[p + 1]]
                if not at.size:
                    continue
                block = unique[at]
                known = self._known(p, block)
                new[at[known]] = False
                if not known.all():
                    self._add(p, block[~known])
            for position in valid[first[new]].tolist():
                fresh[position] = True
        if valid.size < n:
            for position in np.flatnonzero(keys < 0).tolist():
                if recipients[position] not in self._other:
                    self._other.add(recipients[position])
                    fresh[position] = True
        return fresh

    @staticmethod
    def _partition(keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _SPREAD) >> _SHIFT).astype(np.intp)

    def _known(self, partition: int, block: np.ndarray) -> np.ndarray:
        """For each number of ``block`` (sorted), whether the partition already holds it."""
        known = np.zeros(block.size, dtype=bool)
        for run in self._runs[partition]:
            at = np.searchsorted(run, block)
            np.minimum(at, run.size - 1, out=at)
            known |= run[at] == block
        return known

    def _add(self, partition: int, block: np.ndarray) -> None:
        """Append a sorted block of new numbers, merging runs to keep their sizes halving."""
        runs = self._runs[partition]
        runs.append(block)
        self._size += block.size
        while len(runs) > 1 and runs[-2].size < 2 * runs[-1].size:
            last = runs.pop()
            merged = np.concatenate((runs.pop(), last))
            merged.sort(kind="stable")  # two sorted runs: timsort merges them in one pass
            runs.append(merged)
