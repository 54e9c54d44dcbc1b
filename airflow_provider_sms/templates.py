"""Per-recipient message templates: Jinja in a sandbox, strict about unknown columns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment


class MessageTemplateError(ValueError):
    """A message template that cannot render: bad syntax or a column the input does not have."""


class MessageTemplate:
    """``Hello {{ first_name }}``, rendered once per row with the row's columns.

    :param source: the template text.
    :param constants: names available to every row (``campaign_key``, ``ds``, ``params``...).
    """

    _env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)

    def __init__(self, source: str, constants: Mapping[str, Any] | None = None) -> None:
        if not isinstance(source, str) or not source.strip():
            raise MessageTemplateError("the message template is empty")
        try:
            self.variables = meta.find_undeclared_variables(self._env.parse(source))
            self._template = self._env.from_string(source)
        except TemplateSyntaxError as exc:
            raise MessageTemplateError(
                f"message template syntax error on line {exc.lineno}: {exc.message}"
            ) from None
        self.constants = dict(constants or {})

    def check_columns(self, columns: Iterable[str]) -> None:
        """Raise before anything is sent if the template uses a name the rows will not have."""
        missing = sorted(self.variables - set(columns) - set(self.constants))
        if missing:
            raise MessageTemplateError(
                f"the message template uses {', '.join(map(repr, missing))}, which the input does not have "
                f"(columns: {', '.join(sorted(c for c in columns if c != '_row'))})"
            )

    def render(self, row: Mapping[str, Any]) -> str:
        try:
            return self._template.render({**self.constants, **row}).strip()
        except Exception as exc:  # a filter or expression failing on this row's values
            raise MessageTemplateError(f"message template failed: {exc}") from None
