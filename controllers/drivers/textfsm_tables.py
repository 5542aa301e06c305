"""TextFSM tables from ntc-templates, typed: ``parse_table("cisco_ios_show_ip_route", text)``.

The templates are read once from the installed ``ntc-templates`` package (a netmiko
dependency) and compiled per call (a TextFSM object holds parse state). Pure: text in, rows
out. A template that does not fit the text raises ``TableError``.
"""

from __future__ import annotations

import io
from functools import lru_cache
from importlib import resources

import textfsm  # type: ignore[import-untyped, unused-ignore]


class TableError(ValueError):
    """The text could not be parsed with the template."""


@lru_cache(maxsize=32)
def _template(name: str) -> str:
    path = resources.files("ntc_templates") / "templates" / f"{name}.textfsm"
    return path.read_text(encoding="utf-8")


def parse_table(template: str, text: str) -> list[dict[str, str]]:
    """Rows of the template's values, keys lower-cased (``nexthop_ip``, ``distance``...)."""
    try:
        fsm = textfsm.TextFSM(io.StringIO(_template(template)))
        rows = fsm.ParseText(text)
    except (textfsm.TextFSMError, textfsm.TextFSMTemplateError) as err:
        raise TableError(f"{template}: {err}") from None
    header = [str(h).lower() for h in fsm.header]
    return [
        {
            key: value if isinstance(value, str) else " ".join(map(str, value))
            for key, value in zip(header, row, strict=True)
        }
        for row in rows
    ]
