"""The send window on the Airflow side: deferring a send task (its worker slot freed) until the
window opens, and the schedule time of each message as its batch leaves."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

import pendulum
from airflow.sdk import Context

from airflow_provider_sms.campaign.send_window import SendWindow


class SendWindowDeferral:
    """Mixed into :class:`~airflow_provider_sms.operators.send.SmsBulkSendOperator`: reads its
    ``send_window``, ``window_timezone``, ``window_mode`` and ``dry_run`` and calls its ``run_campaign``."""

    send_window: Any
    window_timezone: str
    window_mode: str
    dry_run: bool

    def execute(self, context: Context) -> dict[str, Any]:
        self._defer_while_window_closed()
        return self.run_campaign(context)

    def execute_after_window(self, context: Context, event: Any = None) -> dict[str, Any]:
        # Checked again: a task that wakes late, after the window closed, waits for the next opening.
        self._defer_while_window_closed()
        return self.run_campaign(context)

    def _defer_while_window_closed(self) -> None:
        """With ``window_mode="defer"``, defer until the window opens in ``window_timezone``."""
        if self.window is None or self.window_mode != "defer" or self.dry_run:
            return
        opens = self.window.next_opening()
        if opens is not None:
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            moment = pendulum.instance(opens)
            self.log.info("Outside the send window; deferring until %s", moment.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_after_window")

    @cached_property
    def window(self) -> SendWindow | None:
        """The send window (its ``clock`` is the wall clock; tests give it the sandbox's)."""
        return SendWindow(*self.send_window, timezone=self.window_timezone) if self.send_window else None

    def send_at_in(self, tz: str | None) -> datetime | None:
        """When to schedule a message to a recipient in ``tz`` (the row's send-window zone), asked
        as its batch leaves: the window's next opening there (UTC), or None to send now. Subclasses
        with their own schedule time override this (it replaces ``send_at_for(row)``, which was
        asked when the row was read)."""
        return None if tz is None or self.window is None else self.window.next_opening(tz)
