"""The safety rails on the Airflow side: the arguments the send, the newsletter and the contact sync
share, checked when the DAG is parsed, turned into the engines' :class:`RailSettings`, and a
budget failure turned into ``AirflowFailException`` (retrying cannot make a campaign cheaper).

The rails themselves (what is left out and why, the budget) are ``campaign/rails.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.campaign.rails import FrequencyCap, Rails, RailSettings
from airflow_provider_sms.exceptions import SmsBudgetExceededError
from airflow_provider_sms.storage.table import quote_name

CapArgument = tuple[int, timedelta | int | float | str]

OPT_OUT_DOC = """
    Safety rails (docs/rails.md; the same arguments on the send, the newsletter and the contact sync):

    :param honour_opt_outs: leave out every number the opt-out table holds as opted out (a send
        records it ``suppressed``, reason ``"opted out"``; a contact sync marks or removes it). Set
        False only for transactional messages (an order confirmation, a one-time code).
    :param opt_out_conn_id: SQL connection of the opt-out table; default the ledger's (or, for
        the contact sync, the state's) connection. Unreachable: the task fails.
    :param opt_out_table: the opt-out table (created empty if it is missing).
"""
BUDGET_DOC = """
    :param max_messages_per_recipient: ``(n, period)``, e.g. ``(2, "7d")``: a recipient who got
        ``n`` messages from other campaigns of the ledger within ``period`` (a timedelta, seconds,
        or ``"90m"``, ``"24h"``, ``"7d"``, ``"2w"``) is ``suppressed``, reason ``"frequency cap"``.
        Counted: ledger rows ``accepted``, ``sending`` or ``ambiguous``. None: no cap.
    :param max_cost: fail before anything leaves when the estimate (segments still to send x
        ``cost_per_segment``; without a price, segments) exceeds it. None: no limit.
    :param check_balance: before anything leaves, compare the estimate with the gateway's balance
        (TextBoost units: segments; Smstools money: needs ``cost_per_segment``; SmsGateway24 has
        none). Over ``max_cost`` or the balance fails at once, without retries, sending nothing.
"""


def rails_doc(*, budget: bool) -> Callable[[type], type]:
    """Append the rails' parameters to an operator's docstring (one text for the three operators)."""

    def document(cls: type) -> type:
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + OPT_OUT_DOC + (BUDGET_DOC if budget else "")
        return cls

    return document


class SafetyRails:
    """Mixed into the operators: keeps the rail arguments and builds the engines' rails from them."""

    honour_opt_outs: bool = True
    opt_out_conn_id: str | None = None
    opt_out_table: str = "sms_opt_outs"
    max_messages_per_recipient: CapArgument | None = None
    max_cost: float | None = None
    check_balance: bool = True

    def set_rails(
        self,
        honour_opt_outs: bool = True,
        opt_out_conn_id: str | None = None,
        opt_out_table: str = "sms_opt_outs",
        max_messages_per_recipient: CapArgument | None = None,
        max_cost: float | None = None,
        check_balance: bool = True,
    ) -> None:
        """Check and keep the arguments (a wrong one fails when the DAG is parsed)."""
        quote_name(opt_out_table)
        FrequencyCap.of(max_messages_per_recipient)
        if max_cost is not None and (isinstance(max_cost, bool) or not float(max_cost) >= 0):
            raise ValueError(f"max_cost must be a number, 0 or more, got {max_cost!r}")
        self.honour_opt_outs = bool(honour_opt_outs)
        self.opt_out_conn_id = opt_out_conn_id
        self.opt_out_table = opt_out_table
        self.max_messages_per_recipient = max_messages_per_recipient
        self.max_cost = None if max_cost is None else float(max_cost)
        self.check_balance = bool(check_balance)

    def rail_settings(self, default_conn_id: str, cost_per_segment: float | None = None) -> RailSettings:
        """The engines' settings; the opt-out table on ``default_conn_id`` unless one was named."""
        return RailSettings(
            honour_opt_outs=self.honour_opt_outs,
            opt_out_conn_id=self.opt_out_conn_id or default_conn_id,
            opt_out_table=self.opt_out_table,
            frequency_cap=FrequencyCap.of(self.max_messages_per_recipient),
            max_cost=self.max_cost,
            check_balance=self.check_balance,
            cost_per_segment=cost_per_segment,
        )

    def make_rails(self, campaign_key: str, **kw: Any) -> Rails:
        """The rails of one run; ``kw``: ``read_only``, ``cost_per_segment``, ``log``, and
        ``ledger_conn_id`` / ``ledger_table`` (default the operator's): the ledger a cap reads
        and the default connection of the opt-out table."""
        conn_id = kw.pop("ledger_conn_id", getattr(self, "ledger_conn_id", None))
        table = kw.pop("ledger_table", getattr(self, "ledger_table", "sms_messages"))
        settings = self.rail_settings(conn_id, kw.pop("cost_per_segment", None))
        return Rails(settings, campaign_key=campaign_key, ledger_conn_id=conn_id, ledger_table=table, **kw)

    def price(self, cost_per_segment: float | None, hook: Any) -> float | None:
        """The price of a segment: the argument, else the connection's ``cost_per_segment`` extra."""
        price = cost_per_segment if cost_per_segment is not None else hook.extra("cost_per_segment")
        return None if price is None else float(price)


@contextmanager
def failing_fast() -> Iterator[None]:
    """Over budget: ``AirflowFailException`` (no retry), with the rails' message."""
    try:
        yield
    except SmsBudgetExceededError as exc:
        raise AirflowFailException(str(exc)) from exc
