"""The docs keep up with the code: every hook documented with its exact signature, links resolve."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from trollmoves_core import hookspecs

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PLUGINS_DOC = DOCS / "plugins.md"


def hook_signature(name: str) -> str:
    """``name(params) -> return`` as written in hookspecs.py (annotations are strings there)."""
    function = getattr(hookspecs, name)
    params = ", ".join(inspect.signature(function).parameters)
    returns = function.__annotations__.get("return")
    return f"{name}({params})" + (f" -> {returns}" if returns else "")


HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if name.startswith("trollmoves_") and callable(value))


def test_hookspecs_are_found() -> None:
    assert sorted(hookspecs.__all__) == HOOKS
    assert len(HOOKS) >= 3


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    text = PLUGINS_DOC.read_text()
    assert f"\n### {hook}\n" in text, f"docs/plugins.md has no '### {hook}' heading"
    section = text.split(f"\n### {hook}\n", 1)[1].split("\n### ", 1)[0]
    assert hook_signature(hook) in section, f"docs/plugins.md: {hook} is not shown as {hook_signature(hook)!r}"


def test_no_documented_hook_is_missing_from_hookspecs() -> None:
    documented = re.findall(r"^### (trollmoves_\w+)", PLUGINS_DOC.read_text(), re.M)
    assert sorted(documented) == HOOKS


def _links() -> list[tuple[Path, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not target.startswith("mailto:"):
                found.append((page, target))
    return found


@pytest.mark.parametrize("page, target", _links(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_relative_links_resolve(page: Path, target: str) -> None:
    assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"


@pytest.mark.parametrize("index", ["roles/index.md", "movers/index.md"])
def test_pages_marked_coming_do_not_exist_yet(index: str) -> None:
    """Once a role or mover page is written, its index entry must link to it."""
    page = DOCS / index
    for name in re.findall(r"(\w+) \(coming\)", page.read_text()):
        assert not (page.parent / f"{name}.md").exists(), f"docs/{index}: link {name}.md instead of '(coming)'"


def test_migration_shows_an_upstream_and_a_trollmoves_exec_start_per_role() -> None:
    from trollmoves_core.cli import build_parser
    from trollmoves_core.plugins import default_host

    text = (DOCS / "migration.md").read_text()
    lines = re.findall(r"^ExecStart=(\S+)(.*)$", text, re.M)
    ours = [args.split() for command, args in lines if command == "/opt/trollmoves/bin/trollmoves"]
    theirs = [Path(command).name for command, _ in lines if command.startswith("/opt/pytroll/bin/")]
    roles = ["server", "client", "mirror", "dispatcher", "downloader"]
    assert [argv[0] for argv in ours] == roles
    assert theirs == ["move_it_server.py", "move_it_client.py", "move_it_mirror.py", "dispatcher.py",
                      "s3downloader.py"]
    parser = build_parser(default_host())
    for argv in ours:  # each line runs as written: the role, its config and its flags parse
        args = parser.parse_args(argv)
        assert args.command == argv[0] and argv[1].startswith("/etc/trollmoves/")
