"""Plugin discovery, registries and their error messages."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from pathlib import Path

import pytest

from trollmoves_core import default_plugins, hookimpl, plugins
from trollmoves_core.command import Command
from trollmoves_core.exceptions import PluginConflictError, UnknownPluginError
from trollmoves_core.file_mover import FileMover
from trollmoves_core.mover import Mover
from trollmoves_core.plugins import load_plugins
from trollmoves_core.role import Role


def plugin_object(**hooks):
    """A hashable plugin object carrying the given hook implementations."""
    return type("InlinePlugin", (), {name: staticmethod(hookimpl(fn)) for name, fn in hooks.items()})()


class NullMover(Mover):
    NAME = "null"
    SCHEMES = ("null", "file")

    def _put(self, local_path, target, progress):
        pass

    def _get(self, source, local_path, progress):
        pass

    def _delete(self, location):
        pass


def make_dist(tmp_path: Path, name: str, ep_name: str, module: str, source: str) -> None:
    """Install a tiny distribution (a module plus dist-info) on sys.path."""
    (tmp_path / f"{module}.py").write_text(source)
    info = tmp_path / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[trollmoves]\n{ep_name} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(sys.modules):
        if name.startswith("tm_test_"):
            del sys.modules[name]
    importlib.invalidate_caches()


def test_builtin_file_mover_and_watchers_register_through_the_hooks() -> None:
    host = load_plugins()
    assert host.mover_class("file:///tmp/x") is FileMover
    assert host.mover_class("/plain/path") is FileMover
    assert {"watchdog", "polling", "inotify"} <= set(host.watchers.classes)
    core = next(p for p in host.plugins if p.distribution == "trollmoves-core")
    assert core.movers == ["file"]
    assert "trollmoves_register_movers" in core.hooks


def test_unknown_scheme_names_the_package_to_install() -> None:
    host = load_plugins(entry_points=False, extra=[default_plugins])
    with pytest.raises(UnknownPluginError, match=r"^no mover for 'sftp://': pip install trollmoves-ssh$"):
        host.mover_class("sftp://host/path")


def test_a_disabled_plugin_is_said_to_be_disabled_not_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROLLMOVES_DISABLE_PLUGINS", "ssh, roles")
    host = load_plugins()
    with pytest.raises(UnknownPluginError, match=r"^no mover for 'sftp://': trollmoves-ssh is installed but "
                                                 r"disabled \(TROLLMOVES_DISABLE_PLUGINS names 'ssh'\)$"):
        host.mover_class("sftp://host/path")
    assert {p.distribution for p in host.plugins if p.disabled} == {"trollmoves-ssh", "trollmoves-roles"}
    assert "sftp" not in host.movers.classes and "status" not in host.commands.classes


def test_an_unknown_name_to_disable_is_a_warning(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("TROLLMOVES_DISABLE_PLUGINS", "shh")
    with caplog.at_level(logging.WARNING):
        host = load_plugins()
    assert "TROLLMOVES_DISABLE_PLUGINS names 'shh', which no installed plugin is (entry-point names: core," \
        in caplog.text
    assert "sftp" in host.movers.classes


def test_unknown_third_party_scheme_lists_known_ones() -> None:
    host = load_plugins()
    with pytest.raises(UnknownPluginError, match=r"no mover for 'gopher://' \(known: .*file"):
        host.mover_class("gopher://host/x")


def test_unknown_role_names_the_package() -> None:
    with pytest.raises(UnknownPluginError, match="no role 'server': pip install trollmoves-roles"):
        load_plugins(entry_points=False, extra=[default_plugins]).roles.get("server")


def test_broken_plugin_is_skipped_with_a_warning_and_the_rest_works(
        site: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_dist(site, "trollmoves-broken", "broken", "tm_test_broken", "import no_such_module_anywhere\n")
    with caplog.at_level(logging.WARNING):
        host = load_plugins()
    assert "Skipping plugin 'broken' from trollmoves-broken 1.0: ModuleNotFoundError" in caplog.text
    assert host.mover_class("file:///x") is FileMover
    broken = next(p for p in host.plugins if p.name == "broken")
    assert "no_such_module_anywhere" in broken.error


def test_broken_plugin_becomes_a_hard_error_when_its_scheme_is_asked_for(
        site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROLLMOVES_DISABLE_PLUGINS", "ssh")
    make_dist(site, "trollmoves-ssh-fake", "sshfake", "tm_test_sshfake", "raise ImportError('paramiko too old')\n")
    monkeypatch.setitem(plugins.KNOWN_PROVIDERS["mover"], "sftp", "trollmoves-ssh-fake")
    with pytest.raises(UnknownPluginError, match="trollmoves-ssh-fake is installed but failed to load: "
                                                 "ImportError: paramiko too old"):
        load_plugins().mover_class("sftp://h/x")


def test_third_party_plugin_from_entry_point(site: Path) -> None:
    make_dist(site, "trollmoves-null", "null", "tm_test_null", (
        "from trollmoves_core import hookimpl\n"
        "from trollmoves_core.file_mover import FileMover\n"
        "class Null(FileMover):\n"
        "    NAME = 'null'\n"
        "    SCHEMES = ('null',)\n"
        "@hookimpl\n"
        "def trollmoves_register_movers():\n"
        "    return Null\n"))
    host = load_plugins()
    assert host.mover_class("null://x/y").NAME == "null"
    info = next(p for p in host.plugins if p.name == "null")
    assert (info.distribution, info.version, info.movers) == ("trollmoves-null", "1.0", ["null"])


def test_a_second_distribution_with_a_taken_entry_point_name_is_skipped_with_a_warning(
        site: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_dist(site, "trollmoves-dup-a", "dup", "tm_test_dup_a", "")
    make_dist(site, "trollmoves-dup-b", "dup", "tm_test_dup_b", "")
    with caplog.at_level(logging.WARNING):
        host = load_plugins()
    assert [p.distribution for p in host.plugins if p.name == "dup"] == ["trollmoves-dup-a"]
    assert "Skipping plugin 'dup' from trollmoves-dup-b 1.0: another distribution uses that entry-point name" \
        in caplog.text


def test_two_plugins_claiming_one_scheme_is_an_error_naming_both() -> None:
    extra = plugin_object(trollmoves_register_movers=lambda: [NullMover])
    host = load_plugins(extra=[extra])
    with pytest.raises(PluginConflictError, match=r"mover 'file' is provided by more than one plugin: "
                                                  r"trollmoves-core \(core\), InlinePlugin;"):
        host.mover_class("file:///x")
    assert host.mover_class("null://x") is NullMover


def test_hooks_are_collected_through_pluggy_under_any_function_name() -> None:
    @hookimpl(specname="trollmoves_register_movers")
    def movers() -> list[type[Mover]]:
        return [NullMover]

    plugin = type("SpecnamePlugin", (), {"movers": staticmethod(movers)})()
    host = load_plugins(entry_points=False, extra=[plugin])
    assert host.mover_class("null://x") is NullMover


class Shout(Command):
    NAME = "server"

    @classmethod
    def add_arguments(cls, parser):
        pass

    @classmethod
    def run(cls, args, host):
        return 0


class Serve(Role):
    NAME = "server"

    @classmethod
    def add_arguments(cls, parser):
        pass

    @classmethod
    def run(cls, args, host):
        return 0


def test_a_command_and_a_role_of_one_name_are_a_conflict() -> None:
    extra = plugin_object(trollmoves_register_commands=lambda: [Shout], trollmoves_register_roles=lambda: [Serve])
    host = load_plugins(entry_points=False, extra=[extra])
    for registry in (host.roles, host.commands):
        with pytest.raises(PluginConflictError, match="'server' is provided by more than one plugin"):
            registry.get("server")


def test_a_raising_commands_hook_spoils_only_its_plugin(caplog: pytest.LogCaptureFixture) -> None:
    def explode() -> list[type[Command]]:
        raise RuntimeError("bug in the plugin")

    extra = plugin_object(trollmoves_register_commands=explode)
    with caplog.at_level(logging.WARNING):
        host = load_plugins(entry_points=False, extra=[default_plugins, extra])
    assert "trollmoves_register_commands() raised RuntimeError: bug in the plugin" in caplog.text
    assert list(host.commands.classes) == ["plugins", "move", "get", "check"]


def test_hook_returning_a_non_mover_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    extra = plugin_object(trollmoves_register_movers=lambda: [dict])
    with caplog.at_level(logging.WARNING):
        load_plugins(entry_points=False, extra=[extra])
    assert "not a Mover subclass" in caplog.text


def test_plugin_manager_rejects_unknown_hooks() -> None:
    extra = plugin_object(trollmoves_register_teleporters=lambda: [])
    with pytest.raises(Exception, match="unknown hook 'trollmoves_register_teleporters'"):
        load_plugins(entry_points=False, extra=[extra])


def test_installed_distributions_match_their_entry_points() -> None:
    dists = {d.metadata["Name"] for d in importlib.metadata.distributions()
             if any(ep.group == "trollmoves" for ep in d.entry_points)}
    assert {"trollmoves-core", "trollmoves-ftp", "trollmoves-ssh", "trollmoves-s3", "trollmoves-roles"} <= dists


class AnyMover(NullMover):
    """A fallback serving every scheme whose name starts with "any"."""

    NAME = "any"
    SCHEMES = ()
    FALLBACK = True

    @classmethod
    def refusal(cls, scheme):
        return None if scheme.startswith("any") else f"'any' serves no {scheme!r}: pip install any-{scheme}"


class BrokenFallback(NullMover):
    NAME = "broken"
    SCHEMES = ()
    FALLBACK = True

    @classmethod
    def refusal(cls, scheme):
        raise RuntimeError("refusal bug")


def fallback_host(*movers: type[Mover]):
    return load_plugins(entry_points=False,
                        extra=[default_plugins, plugin_object(trollmoves_register_movers=lambda: list(movers))])


def test_a_fallback_serves_only_what_no_plugin_claims() -> None:
    host = fallback_host(AnyMover)
    assert host.mover_class("anything://host/x") is AnyMover
    assert host.mover_class("file:///x") is FileMover
    assert "anything" not in host.movers.classes  # not listed as a scheme: it was asked, not registered


def test_an_explicit_scheme_wins_over_a_fallback_registered_before_it() -> None:
    class AnyFtp(NullMover):
        NAME, SCHEMES = "anyftp", ("anyftp",)

    assert fallback_host(AnyMover, AnyFtp).mover_class("anyftp://host/x") is AnyFtp


def test_our_own_schemes_never_fall_back() -> None:
    class Everything(AnyMover):
        @classmethod
        def refusal(cls, scheme):
            return None

    host = fallback_host(Everything)
    with pytest.raises(UnknownPluginError, match=r"^no mover for 'sftp://': pip install trollmoves-ssh$"):
        host.mover_class("sftp://host/x")
    assert host.mover_class("gopher://host/x") is Everything


def test_a_refusing_fallback_says_why_in_the_no_mover_error() -> None:
    with pytest.raises(UnknownPluginError) as info:
        fallback_host(AnyMover).mover_class("gopher://host/x")
    assert str(info.value) == ("no mover for 'gopher://' (known: file); 'any' serves no 'gopher': "
                               "pip install any-gopher")


def test_a_fallback_whose_refusal_raises_is_named_and_the_next_is_asked() -> None:
    host = fallback_host(BrokenFallback, AnyMover)
    assert host.mover_class("anyway://x") is AnyMover
    with pytest.raises(UnknownPluginError, match=r"InlinePlugin failed to tell: RuntimeError: refusal bug; "
                                                 r"'any' serves no 'gopher'"):
        host.mover_class("gopher://x")


def test_without_a_fallback_an_unknown_scheme_names_the_fsspec_plugin() -> None:
    with pytest.raises(UnknownPluginError) as info:
        load_plugins(entry_points=False, extra=[default_plugins]).mover_class("gcs://bucket/x")
    assert str(info.value) == ("no mover for 'gcs://' (known: file); for any filesystem fsspec knows: "
                               "pip install trollmoves-fsspec")
