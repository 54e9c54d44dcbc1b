"""What the sandbox's gateway routers share (common.py): credentials and page slices."""

from __future__ import annotations

from airflow_provider_sms.sandbox.common import credentials_match, page_items


def test_credentials_match_only_when_every_pair_matches():
    assert credentials_match(("id", "id"), ("sécret", "sécret"))
    assert not credentials_match(("id", "id"), ("secret", "other"))
    assert not credentials_match(("", "id"))
    assert credentials_match(("token", "token"))


def test_page_items_renders_the_items_of_one_page():
    items = list(range(7))
    assert page_items(items, 1, 3, str) == ["0", "1", "2"]
    assert page_items(items, 3, 3, str) == ["6"]
    assert page_items(items, 4, 3, str) == []
    assert page_items(iter(items), 2, 3, lambda i: i * 10) == [30, 40, 50]
