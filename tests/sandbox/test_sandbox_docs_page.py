"""The sandbox's API page ``/docs`` works without internet: no asset from another host."""

from __future__ import annotations

import re

import requests

from airflow_provider_sms.sandbox.testing import run_sandbox

URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


def test_docs_lists_every_gateway_endpoint_and_loads_nothing_from_another_host() -> None:
    with run_sandbox() as sandbox:
        response = requests.get(f"{sandbox.url}/docs", timeout=30)
        schema = requests.get(f"{sandbox.url}/openapi.json", timeout=30).json()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    # No absolute or protocol-relative URL at all, except the sandbox's own.
    assert [url for url in URL.findall(page) if not url.startswith(sandbox.url)] == []
    assert re.findall(r"<script|<link|@import|url\(", page, re.IGNORECASE) == []
    assert 'href="/openapi.json"' in page
    for path in ("/v1/message/send", "/getdata/getallsms", "/api/v3/campaign/{campaign_id}/view"):
        assert path in schema["paths"] and f"<code>{path}</code>" in page
