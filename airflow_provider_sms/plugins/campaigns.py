"""The provider's Airflow plugin: the campaigns app (plugins/app.py) and its places in the UI.

Every process that loads Airflow's plugins imports this module: a task's first SQL query through
common-sql does (hook lineage), not only the API server. So the app, which imports the API server's
security and FastAPI (about 1.3 s), is built on its first request, not here.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/sms-campaigns"


class CampaignsApp:
    """The ASGI app the API server mounts at :data:`URL_PREFIX`: plugins/app.py's FastAPI app,
    imported when the first request (or lifespan event) arrives."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_provider_sms.plugins.app import app

            self._app = app
        await self._app(scope, receive, send)


class SmsCampaignsPlugin(AirflowPlugin):
    """Registers the app and its places in the UI (provider info ``plugins`` and the
    ``airflow.plugins`` entry point both name this class)."""

    name = "sms_campaigns"
    fastapi_apps = [{"app": CampaignsApp(), "url_prefix": URL_PREFIX, "name": "SMS campaigns"}]
    # hrefs are relative: the UI resolves them against its <base href>, so a base_url path works.
    external_views = [
        {
            "name": "SMS campaigns",
            "href": "sms-campaigns/",
            "destination": "nav",
            "url_route": "sms-campaigns",
            "icon": "sms-campaigns/icon.svg",
            "nav_top_level": True,
        },
        {
            "name": "SMS campaign",
            "href": "sms-campaigns/run?dag_id={DAG_ID}&run_id={RUN_ID}",
            "destination": "dag_run",
            "url_route": "sms-campaign-run",
            "icon": "sms-campaigns/icon.svg",
        },
        {
            "name": "SMS campaign",
            "href": "sms-campaigns/run?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "sms-campaign-task",
            "icon": "sms-campaigns/icon.svg",
        },
    ]
