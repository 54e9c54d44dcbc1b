"""What the campaigns pages show, as data: the figures of each campaign (storage), the DAG runs that
sent it (Airflow's metadata), who may see it, and every problem met on the way.

A figure that cannot be read is ``None`` with a problem that says why, never a zero: an unreachable
report table leaves the delivery columns empty and the page says so; the ledger's columns stay.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_sms.plugins.runs import CampaignRun, dag_runs_of, send_task_runs
from airflow_provider_sms.storage.campaigns import (
    Campaign,
    CampaignStore,
    Delivery,
    LedgerCounts,
    MissingTableError,
    Reasons,
    Timeline,
)

log = logging.getLogger(__name__)
SECTION = "sms"
PAGE_SIZE = 25
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Settings:
    """The ``[sms]`` section: where the ledger and report tables are (the operators' defaults)."""

    ledger_conn_id: str
    ledger_table: str
    report_table: str
    cost_per_segment: float | None
    problems: tuple[str, ...] = ()  # settings that could not be used

    @classmethod
    def from_conf(cls) -> Settings:
        from airflow.configuration import conf

        from airflow_provider_sms.get_provider_info import CONFIG_OPTIONS

        def get(name: str) -> str:
            return conf.get(SECTION, name, fallback=CONFIG_OPTIONS[name]["default"]) or ""

        text = get("cost_per_segment").strip()
        cost, problems = None, ()
        try:
            cost = float(text) if text else None
        except ValueError:
            problems = (f"[{SECTION}] cost_per_segment is not a number ({text!r}): no cost is estimated.",)
        return cls(get("ledger_conn_id"), get("ledger_table"), get("report_table"), cost, problems)

    @property
    def ledger_asset_uri(self) -> str:
        return f"sms-table://{self.ledger_conn_id}/{self.ledger_table}"

    def where(self, table: str) -> str:
        return f"table {table!r} on connection {self.ledger_conn_id!r}"


@dataclass(frozen=True)
class Problem:
    """Something the page could not read: ``failed`` (an error) or ``notice`` (nothing there yet)."""

    kind: str
    text: str


@dataclass
class Row:
    """One campaign's figures; the delivery ones are None when the report could not be read."""

    campaign: Campaign
    runs: list[CampaignRun]
    ledger: LedgerCounts
    delivery: Delivery | None
    reasons: Reasons | None
    cost_per_segment: float | None

    @property
    def pending(self) -> int | None:
        """Accepted messages without a final status in the report (yet)."""
        return None if self.delivery is None else self.ledger.accepted - self.delivery.final

    @property
    def delivery_rate(self) -> float | None:
        """Delivered / accepted; None until a report covers any of the campaign's messages."""
        if self.delivery is None or not self.delivery.reported or not self.ledger.accepted:
            return None
        return self.delivery.delivered / self.ledger.accepted

    @property
    def dag_runs(self) -> list[tuple[str, str, list[str]]]:
        """``(dag_id, run_id, tasks)`` per DAG run, tasks as ``task_id`` or ``task_id`` times n (mapped)."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for r in self.runs:
            grouped.setdefault(r.run, [])
            if r.task_id:
                grouped[r.run].append(r.task_id)
        return [
            (dag, run, [f"{t} \u00d7{n}" if n > 1 else t for t, n in Counter(tasks).items()])
            for (dag, run), tasks in grouped.items()
        ]

    @property
    def estimated_cost(self) -> float | None:
        if self.cost_per_segment is None:
            return None
        return round(self.ledger.segments * self.cost_per_segment, 4)

    def as_dict(self) -> dict[str, Any]:
        d = self.delivery
        return {
            "campaign_key": self.campaign.key,
            "gateway": self.campaign.gateway,
            "sms_conn_id": self.campaign.sms_conn_id,
            "started": self.campaign.started.isoformat() if self.campaign.started else None,
            "dag_runs": [
                {
                    "dag_id": r.dag_id,
                    "run_id": r.run_id,
                    "task_id": r.task_id,
                    "map_index": r.map_index,
                    "state": r.state,
                }
                for r in self.runs
            ],
            "recipients": self.ledger.recipients,
            "accepted": self.ledger.accepted,
            "rejected": self.ledger.rejected,
            "suppressed": self.ledger.suppressed,
            "unsent": self.ledger.unsent,
            "rejected_reasons": dict(self.reasons.rejected) if self.reasons else None,
            "suppressed_reasons": dict(self.reasons.suppressed) if self.reasons else None,
            "delivered": None if d is None else d.delivered,
            "undelivered": None if d is None else d.undelivered,
            "failed": None if d is None else d.failed,
            "pending": self.pending,
            "delivery_rate": None if self.delivery_rate is None else round(self.delivery_rate, 6),
            "segments": self.ledger.segments,
            "estimated_cost": self.estimated_cost,
        }


@dataclass
class Access:
    """Which campaigns a user may see: those of the DAGs they may read (all of them, and the
    campaigns no DAG run claims, only with access to every DAG)."""

    every_dag: bool
    readable: Callable[[set[str]], set[str]]

    def visible(self, runs: Sequence[CampaignRun]) -> bool:
        if self.every_dag:
            return True
        dags = {r.dag_id for r in runs}
        return bool(dags and self.readable(dags))

    @classmethod
    def of(cls, user: Any) -> Access:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

        manager = get_auth_manager()
        every = manager.is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, user=user)
        return cls(every, lambda dags: manager.filter_authorized_dag_ids(dag_ids=dags, user=user))


@dataclass
class Listing:
    """The campaigns page: one page of rows, newest first, after the filters."""

    settings: Settings
    rows: list[Row] = field(default_factory=list)
    total: int = 0
    page: int = 1
    page_size: int = PAGE_SIZE
    dag_ids: list[str] = field(default_factory=list)  # for the filter
    gateways: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    empty: str = ""  # why there is no row at all

    def as_dict(self) -> dict[str, Any]:
        return {
            "ledger": {"conn_id": self.settings.ledger_conn_id, "table": self.settings.ledger_table},
            "report": {"conn_id": self.settings.ledger_conn_id, "table": self.settings.report_table},
            "total": self.total,
            "page": self.page,
            "page_size": self.page_size,
            "campaigns": [row.as_dict() for row in self.rows],
            "problems": [{"kind": p.kind, "text": p.text} for p in self.problems],
            "empty": self.empty or None,
        }


def open_store(settings: Settings, problems: list[Problem]) -> CampaignStore | None:
    """The ledger's connection, or None with a failed problem saying why it cannot be opened (and
    the settings' own problems first)."""
    problems += [Problem("failed", text) for text in settings.problems]
    try:
        return CampaignStore(settings.ledger_conn_id, settings.ledger_table, settings.report_table)
    except Exception as exc:
        problems.append(
            Problem(
                "failed",
                f"The ledger connection {settings.ledger_conn_id!r} "
                f"([{SECTION}] ledger_conn_id) cannot be used: {_describe(exc)}",
            )
        )
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _campaigns(store: CampaignStore, settings: Settings, listing: Listing) -> list[Campaign] | None:
    try:
        return store.campaigns()
    except MissingTableError:
        listing.empty = (
            f"No campaign has run yet: the ledger ({settings.where(settings.ledger_table)}) does not "
            "exist. SmsBulkSendOperator creates it on its first run."
        )
    except Exception as exc:
        listing.problems.append(
            Problem(
                "failed",
                f"The ledger ({settings.where(settings.ledger_table)}) cannot be read: {_describe(exc)}",
            )
        )
    return None


def rows_for(
    store: CampaignStore,
    settings: Settings,
    campaigns: Sequence[Campaign],
    links: dict[str, list[CampaignRun]],
    problems: list[Problem],
) -> list[Row]:
    """The figures of ``campaigns``: ledger counts and reasons, and the report's outcomes (None
    with a problem when the report cannot be read)."""
    keys = [c.key for c in campaigns]
    try:
        counts = store.ledger_counts(keys)
        reasons = store.reasons(keys)
    except Exception as exc:
        problems.append(
            Problem(
                "failed",
                f"The ledger ({settings.where(settings.ledger_table)}) cannot be read: {_describe(exc)}",
            )
        )
        return []
    delivery: dict[str, Delivery] | None = None
    try:
        delivery = store.delivery(keys)
    except MissingTableError:
        problems.append(
            Problem(
                "notice",
                f"No delivery report yet: the {settings.where(settings.report_table)} does "
                "not exist (SmsDeliveryReportOperator creates it), so delivered, undelivered, "
                "failed and pending are unknown.",
            )
        )
    except Exception as exc:
        problems.append(
            Problem(
                "failed",
                f"The delivery report ({settings.where(settings.report_table)}) cannot be "
                f"read: {_describe(exc)}; delivered, undelivered, failed and pending are unknown.",
            )
        )
    return [
        Row(
            c,
            links.get(c.key, []),
            counts[c.key],
            None if delivery is None else delivery[c.key],
            reasons[c.key],
            settings.cost_per_segment,
        )
        for c in campaigns
    ]


def listing(
    session: Any,
    access: Access,
    *,
    settings: Settings | None = None,
    dag_id: str | None = None,
    gateway: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> Listing:
    """The campaigns the user may see, newest first, filtered by DAG and gateway, one page of them."""
    settings = settings or Settings.from_conf()
    out = Listing(settings, page=max(page, 1), page_size=min(max(page_size, 1), MAX_PAGE_SIZE))
    store = open_store(settings, out.problems)
    if store is None:
        return out
    try:
        campaigns = _campaigns(store, settings, out)
        if campaigns is None:
            return out
        if not campaigns:
            out.empty = (
                f"No campaign has run yet: the ledger ({settings.where(settings.ledger_table)}) has no rows."
            )
            return out
        links = _links(session, settings, [c.key for c in campaigns], out.problems)
        visible = [c for c in campaigns if access.visible(links.get(c.key, []))]
        out.dag_ids = sorted({r.dag_id for c in visible for r in links.get(c.key, [])})
        out.gateways = sorted({c.gateway for c in visible if c.gateway})
        chosen = [
            c
            for c in visible
            if (not dag_id or any(r.dag_id == dag_id for r in links.get(c.key, [])))
            and (not gateway or c.gateway == gateway)
        ]
        chosen.sort(key=lambda c: (c.started is not None, c.started or datetime.min, c.key), reverse=True)
        out.total = len(chosen)
        if not visible:
            out.empty = "No campaign you may see: the ledger's campaigns belong to DAGs you cannot read."
        elif not chosen:
            out.empty = "No campaign matches the filters."
        start = (out.page - 1) * out.page_size
        out.rows = rows_for(store, settings, chosen[start : start + out.page_size], links, out.problems)
        return out
    finally:
        store.close()


def _links(
    session: Any, settings: Settings, keys: Iterable[str], problems: list[Problem]
) -> dict[str, list[CampaignRun]]:
    try:
        return dag_runs_of(session, settings.ledger_asset_uri, keys)
    except Exception as exc:  # the metadata DB is the API server's own: this is unexpected, say so
        log.exception("Could not link campaigns to DAG runs")
        problems.append(Problem("failed", f"The DAG runs of the campaigns cannot be read: {_describe(exc)}"))
        return {}


@dataclass
class Detail:
    """A campaign's page: its row, the reasons, the timeline."""

    settings: Settings
    row: Row | None = None
    timeline: Timeline | None = None
    problems: list[Problem] = field(default_factory=list)
    empty: str = ""

    def as_dict(self) -> dict[str, Any]:
        reasons = self.row.reasons if self.row else None
        t = self.timeline
        return {
            "campaign": self.row.as_dict() if self.row else None,
            "failure_reasons": [
                {"status": s, "raw_status": raw, "messages": n}
                for s, raw, n in (reasons.failures if reasons else [])
            ],
            "timeline": None
            if t is None
            else {
                "bucket_seconds": t.bucket.total_seconds(),
                "starts": [s.isoformat() for s in t.starts],
                "accepted": t.accepted,
                "delivered": t.delivered,
                "not_delivered": t.not_delivered,
            },
            "problems": [{"kind": p.kind, "text": p.text} for p in self.problems],
            "empty": self.empty or None,
        }


class NotVisible(LookupError):
    """The campaign does not exist, or the user may not see it (the same answer for both)."""


def detail(session: Any, access: Access, key: str, *, settings: Settings | None = None) -> Detail:
    settings = settings or Settings.from_conf()
    out = Detail(settings)
    store = open_store(settings, out.problems)
    if store is None:
        return out
    try:
        try:
            campaign = store.campaign(key)
        except MissingTableError:
            raise NotVisible(key) from None
        except Exception as exc:
            out.problems.append(
                Problem(
                    "failed",
                    f"The ledger ({settings.where(settings.ledger_table)}) cannot be read: {_describe(exc)}",
                )
            )
            return out
        if campaign is None:
            raise NotVisible(key)
        links = _links(session, settings, [key], out.problems)
        if not access.visible(links.get(key, [])):
            raise NotVisible(key)
        rows = rows_for(store, settings, [campaign], links, out.problems)
        if not rows:
            return out
        out.row = rows[0]
        with_report = out.row.delivery is not None
        try:
            if with_report:
                failures = store.failure_reasons(key)
                out.row.reasons = Reasons(out.row.reasons.rejected, out.row.reasons.suppressed, failures)
            out.timeline = store.timeline(key, with_report=with_report)
        except Exception as exc:
            out.problems.append(
                Problem("failed", f"The campaign's timeline cannot be read: {_describe(exc)}")
            )
        return out
    finally:
        store.close()


@dataclass
class RunView:
    """The campaigns one DAG run (or one of its task instances) sent."""

    settings: Settings
    dag_id: str
    run_id: str
    task_id: str | None
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    empty: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "campaigns": [row.as_dict() for row in self.rows],
            "problems": [{"kind": p.kind, "text": p.text} for p in self.problems],
            "empty": self.empty or None,
        }


def run_view(
    session: Any,
    dag_id: str,
    run_id: str,
    *,
    task_id: str | None = None,
    map_index: int | None = None,
    settings: Settings | None = None,
) -> RunView:
    """The campaigns of a DAG run, or of one task instance in it. The caller checked that the user
    may read this DAG's runs."""
    settings = settings or Settings.from_conf()
    out = RunView(settings, dag_id, run_id, task_id)
    try:
        links = send_task_runs(session, settings.ledger_asset_uri, dag_id=dag_id, run_id=run_id)
    except Exception as exc:
        log.exception("Could not read the run's send tasks")
        out.problems.append(Problem("failed", f"The run's send tasks cannot be read: {_describe(exc)}"))
        return out
    if task_id is not None:
        mine = [
            r for r in links if r.task_id == task_id and (map_index in (None, -1) or r.map_index == map_index)
        ]
        links = mine or links  # another task of the run: show what the run sent
    store = open_store(settings, out.problems)
    if store is None:
        return out
    try:
        keys = list(dict.fromkeys(r.campaign_key for r in links))
        campaigns = []
        for key in keys:
            try:
                campaign = store.campaign(key)
            except MissingTableError:
                campaign = None
            if campaign is not None:
                campaigns.append(campaign)
        by_key: dict[str, list[CampaignRun]] = defaultdict(list)
        for r in links:
            by_key[r.campaign_key].append(r)
        if not campaigns:
            # A run whose campaign is named by its key (e.g. a newsletter's), not by an outlet.
            named = _named_campaigns(store, session, settings, dag_id, run_id, out.problems)
            for campaign, run_links in named:
                campaigns.append(campaign)
                by_key[campaign.key] = run_links
        if not campaigns:
            out.empty = "This DAG run sent no SMS campaign" + (
                f" through the ledger {settings.where(settings.ledger_table)}."
                if not links
                else f": its send task ran, but the ledger ({settings.where(settings.ledger_table)}) holds no "
                "row of its campaign."
            )
            return out
        out.rows = rows_for(store, settings, campaigns, by_key, out.problems)
        return out
    except Exception as exc:
        out.problems.append(
            Problem(
                "failed",
                f"The ledger ({settings.where(settings.ledger_table)}) cannot be read: {_describe(exc)}",
            )
        )
        return out
    finally:
        store.close()


def _named_campaigns(
    store: CampaignStore, session: Any, settings: Settings, dag_id: str, run_id: str, problems: list[Problem]
) -> list[tuple[Campaign, list[CampaignRun]]]:
    """Campaigns whose key names this run (``<dag_id>.….<run_id>``), among the ledger's."""
    try:
        candidates = [c for c in store.campaigns() if c.key.startswith(f"{dag_id}.")]
    except MissingTableError:
        return []
    keys = [c.key for c in candidates]
    links = dag_runs_of(session, settings.ledger_asset_uri, keys)
    return [
        (c, [r for r in links.get(c.key, []) if r.run == (dag_id, run_id)])
        for c in candidates
        if any(r.run == (dag_id, run_id) for r in links.get(c.key, []))
    ]
