"""The campaigns pages as HTML: Jinja templates (package data, autoescaped) and the charts they hold."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup

from airflow_provider_sms.plugins import charts
from airflow_provider_sms.plugins.pages import Detail, Listing, Row, RunView

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M21 15a2 2 0 0 1-2 2H7l-4 '
    '4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/><path d="M8 10h.01M12 10h.01M16 10h.01"/></svg>'
)


UNKNOWN = "\u2013"  # an en dash: a figure that could not be read, never shown as 0


@dataclass(frozen=True)
class Links:
    """URLs of this app's pages (under the API server's base path) and of the Airflow UI's."""

    root: str  # this app, e.g. "/sms-campaigns"
    ui: str  # the UI, e.g. "/" (or "/airflow/" behind a proxy path)

    @classmethod
    def of(cls, request: Any, prefix: str) -> Links:
        root = str(request.scope.get("root_path") or prefix).rstrip("/")
        ui = root[: -len(prefix)] if root.endswith(prefix) else ""
        return cls(root, ui + "/")

    def listing(self, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
        return f"{self.root}/" + (f"?{query}" if query else "")

    def campaign(self, key: str) -> str:
        return f"{self.root}/campaign?{urlencode({'key': key})}"

    def dag_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.ui}dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class Fmt:
    """How numbers and times are written on the pages."""

    @staticmethod
    def n(value: int | None) -> str:
        return UNKNOWN if value is None else f"{value:,}"

    @staticmethod
    def rate(value: float | None) -> str:
        return UNKNOWN if value is None else f"{value:.1%}"

    @staticmethod
    def cost(value: float | None) -> str:
        return UNKNOWN if value is None else f"{value:,.2f}"

    @staticmethod
    def when(value: datetime | None) -> str:
        return UNKNOWN if value is None else value.strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def cards(row: Row) -> list[tuple[str, str, str]]:
        """(label, field, value) of a campaign's figures, as its page and a run's tab show them."""
        d, n = row.delivery, Fmt.n
        cards = [
            ("recipients", "recipients", n(row.ledger.recipients)),
            ("accepted", "accepted", n(row.ledger.accepted)),
            ("rejected", "rejected", n(row.ledger.rejected)),
            ("suppressed", "suppressed", n(row.ledger.suppressed)),
            ("delivered", "delivered", n(d.delivered if d else None)),
            ("undelivered", "undelivered", n(d.undelivered if d else None)),
            ("failed", "failed", n(d.failed if d else None)),
            ("pending", "pending", n(row.pending)),
            ("delivery rate", "delivery_rate", Fmt.rate(row.delivery_rate)),
            ("segments", "segments", n(row.ledger.segments)),
            ("estimated cost", "estimated_cost", Fmt.cost(row.estimated_cost)),
        ]
        if row.ledger.unsent:
            cards.insert(4, ("not sent yet", "unsent", n(row.ledger.unsent)))
        return cards


@cache
def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("airflow_provider_sms.plugins", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["fmt"] = Fmt
    return env


def _render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def daily_rates(rows: list[Row]) -> Markup | None:
    """Delivered / accepted per day (the campaigns' start, UTC) and gateway, as a line chart."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        if row.delivery_rate is None or row.campaign.started is None:
            continue
        cell = totals[row.campaign.started.strftime("%Y-%m-%d"), row.campaign.gateway or "?"]
        cell[0] += row.delivery.delivered
        cell[1] += row.ledger.accepted
    if not totals:
        return None
    days = sorted({day for day, _ in totals})
    gateways = sorted({gw for _, gw in totals})
    series = [
        charts.Series(
            gw,
            [100 * totals[day, gw][0] / totals[day, gw][1] if (day, gw) in totals else None for day in days],
        )
        for gw in gateways
    ]
    return charts.grouped_bars(days, series, title="Delivery rate per day and gateway", y_max=100)


def funnel(row: Row) -> Markup:
    d = row.delivery
    stages = [
        charts.Stage(
            "Recipients",
            row.ledger.recipients,
            [
                ("rejected", row.ledger.rejected),
                ("suppressed", row.ledger.suppressed),
                ("not sent yet", row.ledger.unsent),
            ],
        ),
        charts.Stage(
            "Accepted",
            row.ledger.accepted,
            []
            if d is None
            else [("undelivered", d.undelivered), ("failed", d.failed), ("pending", row.pending or 0)],
        ),
    ]
    if d is not None:
        stages.append(charts.Stage("Delivered", d.delivered))
    return charts.funnel(stages, title=f"Funnel of {row.campaign.key}")


def outcomes(row: Row) -> Markup:
    d = row.delivery
    parts = [
        ("delivered", d.delivered if d else 0),
        ("undelivered", d.undelivered if d else 0),
        ("failed", d.failed if d else 0),
        ("pending" if d else "accepted", (row.pending or 0) if d else row.ledger.accepted),
        ("rejected", row.ledger.rejected),
        ("suppressed", row.ledger.suppressed),
        ("unsent", row.ledger.unsent),
    ]
    return charts.stacked_bar(parts, title=f"Where the recipients of {row.campaign.key} ended")


def _bucket_name(width: timedelta) -> tuple[str, str]:
    if width < timedelta(minutes=1):
        return "second", "%H:%M:%S"
    if width < timedelta(hours=1):
        return "minute", "%H:%M"
    if width < timedelta(days=1):
        return "hour", "%m-%d %H:00"
    return "day", "%Y-%m-%d"


def timeline_chart(detail: Detail) -> tuple[Markup | None, str]:
    t = detail.timeline
    if t is None:
        return None, ""
    name, pattern = _bucket_name(t.bucket)

    def cumulative(values: list[int]) -> list[float]:
        out, total = [], 0
        for v in values:
            total += v
            out.append(total)
        return out

    series = [charts.Series("accepted", cumulative(t.accepted), charts.PALETTE[0])]
    if detail.row is not None and detail.row.delivery is not None:
        series += [
            charts.Series("delivered", cumulative(t.delivered), charts.OUTCOME_COLOURS["delivered"]),
            charts.Series("not delivered", cumulative(t.not_delivered), charts.OUTCOME_COLOURS["failed"]),
        ]
    labels = [s.strftime(pattern) for s in t.starts]
    return charts.line_chart(labels, series, title="Messages accepted and delivered over time"), name


def render_listing(listing: Listing, links: Links, dag_id: str, gateway: str) -> str:
    first = (listing.page - 1) * listing.page_size + 1
    return _render(
        "campaigns.html",
        title="SMS campaigns",
        listing=listing,
        s=listing.settings,
        links=links,
        dag_id=dag_id,
        gateway=gateway,
        first=first,
        last=first + len(listing.rows) - 1,
        page_size_param=None if listing.page_size == 25 else listing.page_size,
        daily=daily_rates(listing.rows),
    )


def render_detail(detail: Detail, links: Links) -> str:
    row = detail.row
    chart, bucket = timeline_chart(detail)
    return _render(
        "campaign.html",
        title=f"SMS campaign {row.campaign.key}" if row else "SMS campaign",
        detail=detail,
        row=row,
        links=links,
        funnel=funnel(row) if row else None,
        outcomes=outcomes(row) if row else None,
        timeline=chart,
        bucket=bucket,
    )


def render_run(view: RunView, links: Links) -> str:
    return _render(
        "run.html",
        title="SMS campaign of this run",
        view=view,
        links=links,
        charts=[(row, funnel(row), outcomes(row)) for row in view.rows],
    )
