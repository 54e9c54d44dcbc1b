from __future__ import annotations

import pytest

from airflow_provider_sms.campaign.templates import MessageTemplate, MessageTemplateError


def test_renders_with_row_values_over_constants():
    template = MessageTemplate("Hi {{ name }}, {{ ds }}", {"ds": "2026-11-23", "name": "constant"})
    assert template.render({"name": "Ana", "unused": object()}) == "Hi Ana, 2026-11-23"
    assert template.render({}) == "Hi constant, 2026-11-23"


def test_equal_values_of_different_types_render_differently_despite_the_cache():
    template = MessageTemplate("{{ n }}")
    assert [template.render({"n": v}) for v in (1, 1.0, True, "1", 1)] == ["1", "1.0", "True", "1", "1"]


def test_unhashable_values_render_without_the_cache():
    template = MessageTemplate("{{ tags | join(',') }}")
    assert template.render({"tags": ["a", "b"]}) == "a,b"
    assert template.render({"tags": ["c"]}) == "c"


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(MessageTemplate, "CACHE_SIZE", 10)
    template = MessageTemplate("#{{ i }}")
    assert [template.render({"i": i}) for i in range(25)] == [f"#{i}" for i in range(25)]
    assert len(template._cache) <= 10


@pytest.mark.parametrize("source", ["{{ ['a', 'b', 'c', 'd'] | random }}", "{{ lipsum(1) }}"])
def test_templates_that_are_not_a_function_of_the_row_are_rendered_every_time(source):
    template = MessageTemplate(source)
    assert len({template.render({}) for _ in range(60)}) > 1


def test_a_failing_expression_is_a_clear_error_every_time():
    template = MessageTemplate("{{ 10 // n }}")
    for _ in range(2):  # not cached as a success, nor as anything else
        with pytest.raises(MessageTemplateError, match="message template failed"):
            template.render({"n": 0})
    assert template.render({"n": 5}) == "2"


def test_a_failing_row_is_named_with_the_line_and_the_columns_it_reads_by_type():
    template = MessageTemplate(
        "Hi {{ name }}\nYou owe {{ 100 // amount }} {{ currency }}", {"currency": "EUR"}
    )
    with pytest.raises(MessageTemplateError) as err:
        template.render({"name": "Ana Smith", "amount": 0}, position=7)
    message = str(err.value)
    assert message.startswith("message template failed on input row 7 (template line 2): ZeroDivisionError")
    assert message.endswith("on that line: amount (int), currency (constant)")
    assert "Ana" not in message  # values stay out of the message: they may be names or phone numbers
    with pytest.raises(
        MessageTemplateError, match=r"line 1\).*'dict object' has no attribute 'first'.*user \(dict\)"
    ):
        MessageTemplate("Hi {{ user.first }}").render({"user": {}}, position=0)
