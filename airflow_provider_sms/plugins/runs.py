"""Which DAG runs sent which campaigns, read from Airflow's metadata database (read-only).

Two links, both exact:

1. **The ledger's Asset.** Every task that sends through the ledger declares it as an outlet
   (``sms-table://<conn>/<table>``, :func:`airflow_provider_sms.operators.lineage.ledger_asset`), so
   Airflow's ``task_outlet_asset_reference`` names those tasks. Each of their task instances sent
   the campaign its XCom names (``campaign_key`` of the send's summary), or, for a try that failed
   before it returned, the campaign its rendered ``campaign_key`` names, or the operators' default
   key ``<dag_id>.<task_id>.<logical date or run id>``.
2. **A key that names its run.** A campaign no such task claims is linked to the DAG run whose DAG
   id starts its key and whose run id (or logical date) ends it, e.g. ``{{ dag.dag_id }}.{{ run_id }}``
   or ``{{ dag.dag_id }}.smstools.{{ run_id }}`` (a newsletter).

A campaign neither finds is shown without a DAG run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

CHUNK = 200  # candidate values per IN (...) list


@dataclass(frozen=True)
class CampaignRun:
    """A DAG run (and, where known, the task instance) that sent ``campaign_key``."""

    campaign_key: str
    dag_id: str
    run_id: str
    task_id: str | None = None
    map_index: int = -1
    state: str | None = None
    run_state: str | None = None

    @property
    def run(self) -> tuple[str, str]:
        return self.dag_id, self.run_id


def _value(raw: Any) -> Any:
    """A stored XCom value as Python: a JSON text (the task SDK's) or already decoded."""
    if isinstance(raw, (str, bytes)):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def send_task_runs(
    session: Session,
    asset_uri: str,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
) -> list[CampaignRun]:
    """The task instances of the tasks with ``asset_uri`` as an outlet that started, each with the
    campaign it sent (optionally only those of one DAG, run or task)."""
    from airflow.models.asset import AssetModel, TaskOutletAssetReference
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel

    query = (
        select(
            TI.dag_id,
            TI.run_id,
            TI.task_id,
            TI.map_index,
            TI.state,
            DagRun.state,
            DagRun.logical_date,
            XComModel.value,
            RTIF.rendered_fields,
        )
        .join(
            TaskOutletAssetReference,
            and_(
                TaskOutletAssetReference.dag_id == TI.dag_id, TaskOutletAssetReference.task_id == TI.task_id
            ),
        )
        .join(AssetModel, AssetModel.id == TaskOutletAssetReference.asset_id)
        .join(DagRun, and_(DagRun.dag_id == TI.dag_id, DagRun.run_id == TI.run_id))
        .outerjoin(
            XComModel,
            and_(
                XComModel.dag_id == TI.dag_id,
                XComModel.task_id == TI.task_id,
                XComModel.run_id == TI.run_id,
                XComModel.map_index == TI.map_index,
                XComModel.key == "return_value",
            ),
        )
        .outerjoin(
            RTIF,
            and_(
                RTIF.dag_id == TI.dag_id,
                RTIF.task_id == TI.task_id,
                RTIF.run_id == TI.run_id,
                RTIF.map_index == TI.map_index,
            ),
        )
        .where(AssetModel.uri == asset_uri, TI.start_date.is_not(None))
    )
    if dag_id is not None:
        query = query.where(TI.dag_id == dag_id)
    if run_id is not None:
        query = query.where(TI.run_id == run_id)
    if task_id is not None:
        query = query.where(TI.task_id == task_id)
    found = []
    for dag, run, task, map_index, state, run_state, logical_date, xcom, rendered in session.execute(query):
        # A try that failed before it returned, with no campaign_key of its own: the default key.
        key = _sent_key(_value(xcom), _value(rendered)) or f"{dag}.{task}.{_iso(logical_date) or run}"
        found.append(CampaignRun(key, dag, run, task, map_index, _str(state), _str(run_state)))
    return found


def _sent_key(xcom: Any, rendered: Any) -> str | None:
    if isinstance(xcom, dict) and isinstance(xcom.get("campaign_key"), str) and not xcom.get("dry_run"):
        return xcom["campaign_key"]
    if isinstance(rendered, dict) and isinstance(rendered.get("campaign_key"), str):
        return rendered["campaign_key"]
    return None


def _str(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


def runs_named_by_keys(session: Session, keys: Iterable[str]) -> list[CampaignRun]:
    """Link each key of the form ``<dag_id>.<...>.<run id or logical date>`` to that DAG run, where
    it exists (see the module's docstring)."""
    from airflow.models.dagrun import DagRun

    keys = [k for k in keys if "." in k]
    prefixes: set[str] = set()
    suffixes: set[str] = set()
    for key in keys:
        dots = [i for i, ch in enumerate(key) if ch == "."]
        prefixes.update(key[:i] for i in dots)
        suffixes.update(key[i + 1 :] for i in dots)
    if not keys:
        return []
    dates = {}
    for suffix in suffixes:
        try:
            moment = datetime.fromisoformat(suffix)
        except ValueError:
            continue
        if moment.tzinfo is not None:
            dates[suffix] = moment
    runs: dict[tuple[str, str], tuple[str, str, Any]] = {}
    prefix_list = sorted(prefixes)
    for start in range(0, len(prefix_list), CHUNK):
        dag_part = prefix_list[start : start + CHUNK]
        conditions = [DagRun.run_id.in_(part) for part in _chunks(sorted(suffixes))]
        conditions += [DagRun.logical_date.in_(part) for part in _chunks(sorted(set(dates.values())))]
        if not conditions:
            continue
        query = select(DagRun.dag_id, DagRun.run_id, DagRun.logical_date, DagRun.state).where(
            DagRun.dag_id.in_(dag_part), or_(*conditions)
        )
        for dag, run, logical_date, state in session.execute(query):
            runs[dag, run] = (run, _iso(logical_date) or "", state)
    by_prefix: dict[str, list[tuple[str, str, str, Any]]] = {}
    for (dag, run), (_, logical, state) in runs.items():
        by_prefix.setdefault(dag, []).append((dag, run, logical, state))
    found = []
    for key in keys:
        for i in [i for i, ch in enumerate(key) if ch == "."]:
            for dag, run, logical, state in by_prefix.get(key[:i], []):
                tail = key[i + 1 :]
                if _names(tail, run) or (logical and _names(tail, logical)):
                    found.append(CampaignRun(key, dag, run, run_state=_str(state)))
    return found


def _names(tail: str, ending: str) -> bool:
    return tail == ending or tail.endswith("." + ending)


def _chunks(values: Sequence[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start : start + CHUNK])


def dag_runs_of(session: Session, asset_uri: str, keys: Iterable[str]) -> dict[str, list[CampaignRun]]:
    """Every key's DAG runs: the ledger Asset's tasks first, the key's own naming for the rest."""
    keys = set(keys)
    links: dict[str, list[CampaignRun]] = {}
    for link in send_task_runs(session, asset_uri):
        if link.campaign_key in keys:
            links.setdefault(link.campaign_key, []).append(link)
    for link in runs_named_by_keys(session, keys - set(links)):
        links.setdefault(link.campaign_key, []).append(link)
    return links
