"""Reading and writing inventory files: errors name the file and the place, output is stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.errors import InventoryInvalid, Problem
from inventory.validation import validate_or_raise
from inventory.yamlio import dump_document, parse_yaml, read_document, write_document
from tests.harness.samples import small_inventory


def only_problem(path: Path) -> Problem:
    with pytest.raises(InventoryInvalid) as caught:
        read_document(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert str(path) in str(caught.value)
    return problem


def test_missing_file(tmp_path: Path) -> None:
    problem = only_problem(tmp_path / "absent.yaml")
    assert problem.path == "(file)"
    assert problem.reason == "cannot read: No such file or directory"


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    problem = only_problem(tmp_path)
    assert problem.path == "(file)"
    assert problem.reason == "cannot read: Is a directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes("sites:\n- name: a\n  display_name: 广东省\n".encode("gb18030"))
    problem = only_problem(path)
    assert (problem.path, problem.reason) == ("(file)", "not UTF-8 text")


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("sites:\n  - name: a\n    tier: [county\n", "line 4, column 1", "expected ',' or ']'"),
        ("sites:\n\t- name: a\n", "line 2, column 1", "found character that cannot start"),
        ("sites: []\n---\nsites: []\n", "line 2, column 1", "but found another document"),
        ("version: 1\nsites: []\nsites: []\n", "line 3, column 1", "duplicate key 'sites'"),
        (
            "sites:\n- name: a\n  tier: county\n  tier: province\n",
            "line 4, column 3",
            "duplicate key 'tier'",
        ),
        ("sites: !!python/object:os.system ls\n", "line 1, column 8", "could not determine"),
    ],
    ids=["unclosed-flow", "tab-indent", "two-documents", "dup-top-key", "dup-key", "py-tag"],
)
def test_bad_yaml_names_file_line_and_column(
    tmp_path: Path, text: str, where: str, reason: str
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    problem = only_problem(path)
    assert problem.path == where
    assert problem.reason.startswith("not valid YAML: ")
    assert reason in problem.reason


def test_yaml_merge_keys_are_not_duplicates() -> None:
    raw = parse_yaml(
        "base: &b {vendor: cisco, platform: cisco_ios}\ndev:\n  <<: *b\n  vendor: h3c\n"
    )
    assert raw["dev"] == {"vendor": "h3c", "platform": "cisco_ios"}


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfsites: []\n")
    assert read_document(path).sites == []


def test_validation_problems_carry_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n- name: Bad Name\n  tier: county\n- name: orphan\n  tier: county\n",
        encoding="utf-8",
    )
    with pytest.raises(InventoryInvalid) as caught:
        read_document(path)
    assert {(p.file, p.path) for p in caught.value.problems} == {
        (str(path), "sites[0].name"),
        (str(path), "sites[1].parent"),
    }


def test_write_then_read_round_trips_byte_for_byte(tmp_path: Path) -> None:
    doc = validate_or_raise(small_inventory())
    path = tmp_path / "inventory.yaml"
    write_document(doc, path)
    text = path.read_text(encoding="utf-8")
    assert "广东省" in text  # written as text, not \u escapes
    again = read_document(path)
    assert again == doc
    assert dump_document(again) == text


def test_dump_omits_absent_fields_and_empty_child_lists() -> None:
    doc = validate_or_raise(small_inventory())
    text = dump_document(doc)
    sichuan = text.split("- name: sichuan\n", 1)[1].split("\n- name:", 1)[0]
    assert sichuan.splitlines() == [
        "  display_name: 四川省",
        "  tier: province",
        "  parent: ministry",
        "  province_code: '51'",
    ]
    assert "null" not in text
