"""The schema machinery the roles share: key tables, the key rules, one problem per location."""

from __future__ import annotations

import pytest

from trollmoves_core.config import Section
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.schema import Findings, Key, Schema

ITEM = Schema("item", [Key("topics", list), Key("conditions", list, restricts=True), Key("directory")])
TARGET = Schema("target", [Key("host"), Key("directory"), Key("retries", int, 3, origin="ours"),
                           Key("legacy", used=False)], prefixes=("connection_parameters__",))


def test_keys_of_the_table_and_of_its_prefixes_belong() -> None:
    assert all(TARGET.unknown(name) is None for name in ("host", "legacy", "connection_parameters__port"))
    assert TARGET.names(origin="ours") == {"retries"}
    assert TARGET.names(used=False) == {"legacy"}
    assert TARGET.default("retries") == 3


@pytest.mark.parametrize("name, expected", [
    ("hots", ("unknown key, ignored; did you mean `host`?", False)),
    ("colour", ("unknown key, ignored", False)),
    ("topics", ("not a key of a target: it belongs in an item; ignored", False)),
    ("conditions", ("belongs in an item; ignored here it would widen what is done, so it is refused", True)),
])
def test_the_key_rules(name: str, expected: tuple[str, bool]) -> None:
    assert TARGET.unknown(name, elsewhere={"an item": ITEM}) == expected


def test_a_misplaced_restricting_key_is_refused_by_loaders_naming_file_section_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        TARGET.refuse_misplaced("d.yaml", "t", ["host", "conditions"], elsewhere={"an item": ITEM})
    assert (info.value.file, info.value.section, info.value.key) == ("d.yaml", "t", "conditions")
    assert TARGET.warnings(["host", "hots", "conditions"], elsewhere={"an item": ITEM}) == [
        ("hots", "unknown key, ignored; did you mean `host`?")]


def test_findings_keep_one_problem_per_location() -> None:
    out = Findings("f.ini")
    out.add("unknown", "s", "k", warning=True)
    out.add("bad value", "s", "k")  # an error replaces the warning
    out.add("bad value, said differently", "s", "k")
    out.add("section skipped", "s", warning=True)
    out.add("another section-level finding", "s")
    out.add_error(ConfigError("expected an integer", file="f.ini", section="s", key="n"))
    assert [str(p) for p in out.problems] == [
        "f.ini: [s] k: bad value", "f.ini: [s] warning: section skipped", "f.ini: [s] another section-level finding",
        "f.ini: [s] n: expected an integer"]


def test_ini_types_are_checked_for_used_keys_only() -> None:
    out = Findings("f.ini")
    TARGET.check_ini_types(out, Section("f.ini", "s", {"retries": "many", "legacy": "x", "host": "h"}))
    assert [str(p) for p in out.problems] == ["f.ini: [s] retries: expected an integer, got 'many'"]
