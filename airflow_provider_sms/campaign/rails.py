"""The safety rails of a campaign: opt-outs honoured by number, a frequency cap across campaigns and
a budget guard. The send engine, the newsletter and the contact sync share them; no Airflow here
(the operators' side is ``operators/rails.py``).

- **Opt-outs**: the numbers the opt-out table (``storage/opt_outs.py``) holds as opted out now are
  left out, with the reason ``"opted out"``.
- **Frequency cap** ``(n, period)``: a recipient who got ``n`` messages from other campaigns of the
  ledger within ``period`` before the chunk is processed is left out (``"frequency cap"``). A
  message counts once it left or may have left: ledger state ``accepted`` (whatever its delivery
  status), ``sending`` or ``ambiguous``; ``pending``, ``rejected`` and ``suppressed`` rows never do.
  The campaign's own rows never count, so a retry neither caps nor resends what it already sent.
- **Budget**: before anything leaves, the segments still to send (x ``cost_per_segment``) are
  checked against ``max_cost`` and the gateway's balance; over either raises
  :class:`~airflow_provider_sms.exceptions.SmsBudgetExceededError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_sms.exceptions import SmsBudgetExceededError
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.opt_outs import OptOutTable
from airflow_provider_sms.storage.table import utcnow

OPTED_OUT, FREQUENCY_CAP = "opted out", "frequency cap"
_PERIOD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def now() -> datetime:
    """The rails' clock: what a frequency cap's period is measured back from. Tests pin it by
    replacing this module attribute; the engines look it up at each chunk."""
    return utcnow()


def parse_period(value: timedelta | int | float | str) -> timedelta:
    """A period as a timedelta: a timedelta, seconds, or a text such as ``"7d"``, ``"24h"``,
    ``"90m"``, ``"2w"``, ``"3600s"``."""
    if isinstance(value, timedelta):
        period = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        period = timedelta(seconds=value)
    elif isinstance(value, str) and (match := _PERIOD.match(value)):
        period = timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
    else:
        raise ValueError(f"a period is a timedelta, seconds or a text like '7d' or '24h', got {value!r}")
    if period <= timedelta(0):
        raise ValueError(f"a period must be longer than zero, got {value!r}")
    return period


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``count`` messages to a recipient within ``period``, across every campaign of a ledger."""

    count: int
    period: timedelta

    @classmethod
    def of(
        cls, value: tuple[int, timedelta | int | float | str] | FrequencyCap | None
    ) -> FrequencyCap | None:
        """``(n, period)`` as a cap (None stays None); refuses anything else with a ``ValueError``."""
        if value is None or isinstance(value, FrequencyCap):
            return value
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(f"max_messages_per_recipient is (n, period), e.g. (2, '7d'), got {value!r}")
        count, period = value
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"max_messages_per_recipient needs a count of 1 or more, got {count!r}")
        return cls(count, parse_period(period))

    def __str__(self) -> str:
        return f"{self.count} per {self.period}"


@dataclass(frozen=True)
class RailSettings:
    """The rails of one run; the fields mean what the operators' parameters of the same name mean.

    ``opt_out_conn_id`` is resolved by the operator (default: its ledger or state connection).
    """

    honour_opt_outs: bool = True
    opt_out_conn_id: str | None = None
    opt_out_table: str = "sms_opt_outs"
    frequency_cap: FrequencyCap | None = None
    max_cost: float | None = None
    check_balance: bool = True
    cost_per_segment: float | None = None

    def __post_init__(self) -> None:
        if self.honour_opt_outs and not self.opt_out_conn_id:
            raise ValueError("honouring opt-outs needs opt_out_conn_id, the connection of the opt-out table")
        if self.max_cost is not None and not self.max_cost >= 0:
            raise ValueError(f"max_cost must be 0 or more, got {self.max_cost!r}")

    def budget_applies(self, hook: SmsGatewayHook) -> bool:
        """Whether a campaign must be estimated before it sends: a ``max_cost``, or a balance that
        can be compared (SMS units; money needs ``cost_per_segment``)."""
        if self.max_cost is not None:
            return True
        kind = hook.capabilities.credit if self.check_balance else None
        return kind == "segments" or (kind == "currency" and self.cost_per_segment is not None)


class Rails:
    """One run's rails on its tables: which recipients of a chunk are left out, and why.

    ``read_only`` (a dry run) creates nothing: a missing opt-out table or ledger reads as empty. A
    database that cannot be reached fails the run: a check that cannot run is never skipped.
    Holds its connections until :meth:`close`; use it from one thread.
    """

    def __init__(
        self,
        settings: RailSettings,
        *,
        campaign_key: str,
        ledger_conn_id: str | None = None,
        ledger_table: str = "sms_messages",
        read_only: bool = False,
        clock: Callable[[], datetime] | None = None,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.settings = settings
        self.campaign_key = campaign_key
        self.read_only = read_only
        self.clock = clock
        self.log = log or logging.getLogger(__name__)
        self.opt_outs: OptOutTable | None = None
        self.ledger: MessageLedger | None = None
        if settings.honour_opt_outs:
            self.opt_outs = OptOutTable(settings.opt_out_conn_id, settings.opt_out_table)
        if settings.frequency_cap is not None:
            if not ledger_conn_id:
                raise ValueError("a frequency cap reads the ledger: it needs the ledger's connection")
            self.ledger = MessageLedger(ledger_conn_id, ledger_table)
        self._opened = False

    def open(self) -> None:
        """Create the opt-out table if it is missing (empty: a first campaign works) and the
        ledger's index for the cap; in read-only mode, find out which of them exist."""
        if self._opened:
            return
        self._opened = True
        if self.opt_outs is not None:
            if self.read_only:
                if not self.opt_outs.exists():
                    self.opt_outs = None
            else:
                self.opt_outs.ensure()
        if self.ledger is not None:
            if self.read_only:
                if not self.ledger.exists():
                    self.ledger = None
            else:
                self.ledger.ensure_table()
                self.ledger.ensure_recipient_index()

    def close(self) -> None:
        for table in (self.opt_outs, self.ledger):
            if table is not None:
                table.close()

    def any_opted_out(self) -> bool:
        """Whether any number is opted out now (so a list may hold one)."""
        self.open()
        return self.opt_outs is not None and self.opt_outs.counts()["opted_out"] > 0

    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        """Those of ``numbers`` (E.164) that opted out (none when opt-outs are not honoured)."""
        self.open()
        return self.opt_outs.opted_out(numbers) if self.opt_outs is not None and numbers else set()

    def capped(self, numbers: Sequence[str]) -> set[str]:
        """Those of ``numbers`` who already got the cap's count of messages from other campaigns
        within its period, measured back from now (the rails' clock)."""
        self.open()
        cap = self.settings.frequency_cap
        if cap is None or self.ledger is None or not numbers:
            return set()
        since = (self.clock or now)() - cap.period
        counts = self.ledger.recent_counts(numbers, since=since, other_than=self.campaign_key)
        return {number for number, n in counts.items() if n >= cap.count}

    def exclusions(self, numbers: Sequence[str]) -> dict[str, str]:
        """``{number: reason}`` for those of ``numbers`` the rails leave out: ``"opted out"``
        first, then ``"frequency cap"``; one query of each table per call."""
        numbers = list(numbers)
        left_out = dict.fromkeys(sorted(self.opted_out(numbers)), OPTED_OUT)
        rest = [n for n in numbers if n not in left_out]
        left_out.update(dict.fromkeys(sorted(self.capped(rest)), FREQUENCY_CAP))
        return left_out

    def check_budget(self, hook: SmsGatewayHook, segments: int, what: str) -> dict[str, Any]:
        """Check ``segments`` still to send against ``max_cost`` and the gateway's balance; raise
        :class:`SmsBudgetExceededError` (saying by how much) when either would be exceeded.
        Returns the estimate for the summary."""
        return check_budget(self.settings, hook, segments, what, self.log)


def balance_unchecked(settings: RailSettings, hook: SmsGatewayHook) -> str | None:
    """Why the gateway's balance cannot be compared with an estimate (None: it can, or
    ``check_balance`` is off)."""
    kind = hook.capabilities.credit
    if not settings.check_balance:
        return None
    if kind is None:
        return f"{hook.gateway} has no balance endpoint: the balance is not checked"
    if kind == "currency" and settings.cost_per_segment is None:
        return (
            f"The {hook.gateway} balance is money: set cost_per_segment (or the connection's "
            "cost_per_segment extra) to compare it with the estimate; the balance is not checked"
        )
    return None


def check_budget(
    settings: RailSettings,
    hook: SmsGatewayHook,
    segments: int,
    what: str,
    log: logging.Logger | logging.LoggerAdapter,
) -> dict[str, Any]:
    """See :meth:`Rails.check_budget`. Without ``cost_per_segment`` a segment costs one unit, so
    ``max_cost`` counts segments. The balance is asked only when something is left to send."""
    price = settings.cost_per_segment
    cost = round(segments * (1.0 if price is None else price), 6)
    unit = "segments" if price is None else "in the gateway's currency"
    how = f"{segments} segments" + ("" if price is None else f" x {price:g}")
    estimate: dict[str, Any] = {"segments": segments, "estimated_cost": cost}
    if settings.max_cost is not None and cost > settings.max_cost:
        raise SmsBudgetExceededError(
            f"{what} would cost {cost:g} ({how}; {unit}), {cost - settings.max_cost:g} more than "
            f"max_cost={settings.max_cost:g}; nothing was sent"
        )
    kind = hook.capabilities.credit
    if not settings.check_balance or not segments:
        return estimate
    unchecked = balance_unchecked(settings, hook)
    if unchecked:
        log.info("%s", unchecked)
        return estimate
    credit = hook.get_credit()
    need = float(segments) if kind == "segments" else cost
    estimate["balance"] = credit.amount
    if need > credit.amount:
        left = (
            f"{credit.amount:g} {credit.currency or ''}".strip()
            if kind == "currency"
            else f"{credit.amount:g} segments"
        )
        raise SmsBudgetExceededError(
            f"{what} needs {need:g} ({how}) but the {hook.gateway} balance has {left} left: "
            f"{need - credit.amount:g} short; nothing was sent"
        )
    log.info("Budget: %s needs %g (%s); the %s balance has %g", what, need, how, hook.gateway, credit.amount)
    return estimate
