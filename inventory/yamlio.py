"""Reading and writing inventory YAML, fast (libyaml when present) and byte-stable on output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inventory.document import InventoryDoc
from inventory.errors import InventoryInvalid, Problem
from inventory.validation import validate_or_raise

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


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
    """The canonical YAML form: field order of the models, absent fields omitted."""
    data = doc.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    for site in data.get("sites", []):
        # Empty nested lists add noise to 1,500 county entries without carrying information.
        for key in ("devices", "links"):
            if not site.get(key):
                site.pop(key, None)
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
