"""The ledger with the per-row statements it used before every batch change became one statement.

:class:`PerRowLedger` is the reference the set-based statements of :class:`~airflow_provider_sms.
storage.ledger.MessageLedger` are tested against (``tests/storage/test_set_based.py`` runs both on
the same random sequences and compares the tables) and measured against (``python -m benchmarks
--only ledger``). The statements live in ``ledger.py``, which falls back to them itself where SQLite
is older than 3.33.
"""

from __future__ import annotations

from airflow_provider_sms.storage.ledger import MessageLedger


class PerRowLedger(MessageLedger):
    """A :class:`MessageLedger` whose batch changes are one statement per row, on any database."""

    @property
    def set_based(self) -> bool:
        return False
