"""The campaigns app of the provider's Airflow plugin (plugins/campaigns.py): an "SMS campaigns" page
in the UI's navigation and an "SMS campaign" tab on each DAG run and task instance, served inside the
API server.

Every route authenticates like the rest of the UI (the JWT in the ``Authorization`` header or the
UI's ``_token`` cookie, ``airflow.api_fastapi.core_api.security.get_user``: none answers 401, a bad
one 403) and shows only the campaigns of DAGs the user may read; a run's tab checks
``requires_access_dag("GET", RUN)`` for its DAG. Nothing is written: the ledger's connection is
opened read-only.

Pages (HTML, drawn on the server, charts as inline SVG) and the same data as JSON:

- ``/sms-campaigns/`` and ``/sms-campaigns/api/campaigns``: campaigns newest first, ``?dag_id=``,
  ``?gateway=``, ``?page=``, ``?page_size=``;
- ``/sms-campaigns/campaign?key=`` and ``/sms-campaigns/api/campaign?key=``: one campaign;
- ``/sms-campaigns/run?dag_id=&run_id=[&task_id=&map_index=]`` and ``/sms-campaigns/api/run?…``:
  what a DAG run (or task instance) sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from airflow_provider_sms.plugins import pages, views
from airflow_provider_sms.plugins.campaigns import URL_PREFIX

UserDep = Annotated[BaseUser, Depends(get_user)]
RunAccess = Depends(requires_access_dag("GET", DagAccessEntity.RUN))

app = FastAPI(
    title="SMS campaigns",
    description="Campaigns sent by airflow-provider-sms: the ledger and delivery report, per campaign.",
    docs_url=None,  # the API server's own docs are where users look; this app has no login form
    redoc_url=None,
    openapi_url=None,
)


def _status(problems: list[pages.Problem]) -> int:
    return 503 if any(p.kind == "failed" for p in problems) else 200


@dataclass
class ListingQuery:
    """The campaigns list's filters and page, the same for its page and its JSON."""

    dag_id: str | None = None
    gateway: str | None = None
    page: Annotated[int, Query(ge=1)] = 1
    page_size: Annotated[int, Query(ge=1, le=pages.MAX_PAGE_SIZE)] = pages.PAGE_SIZE

    def listing(self, session: Any, user: BaseUser) -> pages.Listing:
        return pages.listing(
            session,
            pages.Access.of(user),
            dag_id=self.dag_id or None,
            gateway=self.gateway or None,
            page=self.page,
            page_size=self.page_size,
        )


@app.get("/api/campaigns")
def campaigns_json(
    session: SessionDep, user: UserDep, query: Annotated[ListingQuery, Depends()]
) -> JSONResponse:
    found = query.listing(session, user)
    return JSONResponse(found.as_dict(), status_code=_status(found.problems if not found.rows else []))


@app.get("/", response_class=HTMLResponse)
def campaigns_page(
    request: Request, session: SessionDep, user: UserDep, query: Annotated[ListingQuery, Depends()]
) -> HTMLResponse:
    found = query.listing(session, user)
    links = views.Links.of(request, URL_PREFIX)
    html = views.render_listing(found, links, query.dag_id or "", query.gateway or "")
    return HTMLResponse(html, status_code=_status(found.problems if not found.rows else []))


def _detail(session: Any, user: BaseUser, key: str) -> pages.Detail:
    try:
        return pages.detail(session, pages.Access.of(user), key)
    except pages.NotVisible:
        raise HTTPException(404, "No such campaign, or it belongs to a DAG you may not read") from None


@app.get("/api/campaign")
def campaign_json(session: SessionDep, user: UserDep, key: str) -> JSONResponse:
    found = _detail(session, user, key)
    return JSONResponse(found.as_dict(), status_code=_status(found.problems if found.row is None else []))


@app.get("/campaign", response_class=HTMLResponse)
def campaign_page(request: Request, session: SessionDep, user: UserDep, key: str) -> HTMLResponse:
    found = _detail(session, user, key)
    html = views.render_detail(found, views.Links.of(request, URL_PREFIX))
    return HTMLResponse(html, status_code=_status(found.problems if found.row is None else []))


@dataclass
class RunQuery:
    """One DAG run (and optionally one task of it), for the run tab's page and its JSON."""

    dag_id: str
    run_id: str
    task_id: str | None = None
    map_index: int | None = None

    def view(self, session: Any) -> pages.RunView:
        return pages.run_view(
            session, self.dag_id, self.run_id, task_id=self.task_id, map_index=self.map_index
        )


@app.get("/api/run", dependencies=[RunAccess])
def run_json(session: SessionDep, query: Annotated[RunQuery, Depends()]) -> JSONResponse:
    found = query.view(session)
    return JSONResponse(found.as_dict(), status_code=_status(found.problems if not found.rows else []))


@app.get("/run", response_class=HTMLResponse, dependencies=[RunAccess])
def run_page(request: Request, session: SessionDep, query: Annotated[RunQuery, Depends()]) -> HTMLResponse:
    found = query.view(session)
    html = views.render_run(found, views.Links.of(request, URL_PREFIX))
    return HTMLResponse(html, status_code=_status(found.problems if not found.rows else []))


@app.get("/icon.svg")
def icon(user: UserDep) -> Response:
    """The navigation entry's icon."""
    return Response(views.ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})
