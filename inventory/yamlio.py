"""Reading and writing inventory YAML, fast (libyaml when present) and byte-stable on output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inventory.document import InventoryDoc
from inventory.errors import InventoryInvalid, Problem
from inventory.validation import validate_or_raise

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(_SafeLoader):  # type: ignore[misc]  # libyaml's loader has no type stubs
    """The safe loader, refusing duplicate keys: YAML forbids them and PyYAML silently keeps the
    last one, which would drop a whole ``sites:`` list and, with prune, delete those sites."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def parse_yaml(text: str, file: str | None = None) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        reason = getattr(err, "problem", None) or str(err)
        raise InventoryInvalid([Problem(where, f"not valid YAML: {reason}", file)]) from err


def read_document(path: str | Path) -> InventoryDoc:
    """Load and fully validate an inventory file; raises InventoryInvalid listing every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise InventoryInvalid([Problem("(file)", f"cannot read: {err.strerror}", str(p))]) from err
    except UnicodeDecodeError as err:
        raise InventoryInvalid([Problem("(file)", "not UTF-8 text", str(p))]) from err
    return validate_or_raise(parse_yaml(text, str(p)), str(p))


def dump_document(doc: InventoryDoc) -> str:
    """The canonical YAML form: field order of the models; absent and default fields omitted
    (``snmp_port: 161`` on 6,000 devices is noise), except the format ``version``."""
    data = {"version": doc.version, **doc.model_dump(mode="json", exclude_defaults=True)}
    out: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )
    return out


def write_document(doc: InventoryDoc, path: str | Path) -> None:
    Path(path).write_text(dump_document(doc), encoding="utf-8")
