"""FsspecMover's errors, retries, options and connection reuse, on nginx's WebDAV."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from trollmoves_fsspec.mover import FsspecMover
from trollmoves_fsspec.options import storage_options
from trollmoves_http.testing import PASSWORD, USER, Nginx, free_port

from trollmoves_core.exceptions import ConfigError, TransferError

Params = Callable[..., dict[str, Any]]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "data.nc"
    path.write_bytes(b"satellite data\n" * 1000)
    return path


def attempts(dav_server: Nginx, method: str, prefix: str, since: int) -> int:
    return sum(1 for entry in dav_server.requests()[since:] if entry.method == method and entry.uri.startswith(prefix))


def test_a_refused_upload_is_not_retried(dav_server: Nginx, dav_params: Params, source: Path) -> None:
    """``/`` is nginx's read-only static root: PUT is 405 there."""
    before = len(dav_server.requests())
    with FsspecMover(dav_params("/", retries=3)) as mover, pytest.raises(TransferError) as info:
        mover.put(source, "webdav://static/")
    assert str(info.value).startswith(f"put {source} to webdav://static/data.nc failed: ")
    assert "405" in str(info.value) and not info.value.transient
    assert attempts(dav_server, "PUT", "/static/", before) == 1


def test_a_server_error_is_retried(dav_server: Nginx, dav_params: Params, source: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    before = len(dav_server.requests())
    with FsspecMover(dav_params("/unavailable/", retries=2)) as mover, pytest.raises(TransferError) as info, \
            caplog.at_level(logging.WARNING):
        mover.put(source, "webdav://in/")
    assert "503" in str(info.value) and info.value.transient
    assert attempts(dav_server, "PUT", "/unavailable/in/", before) == 2
    assert "(attempt 1 of 2), retrying" in caplog.text


def test_a_not_implemented_reply_is_not_retried(dav_server: Nginx, dav_params: Params, source: Path) -> None:
    before = len(dav_server.requests())
    with FsspecMover(dav_params("/not-implemented/", retries=3)) as mover, pytest.raises(TransferError) as info:
        mover.put(source, "webdav://in/")
    assert "501" in str(info.value) and not info.value.transient
    assert attempts(dav_server, "PUT", "/not-implemented/in/", before) == 1


def test_a_refused_connection_is_transient(source: Path, caplog: pytest.LogCaptureFixture) -> None:
    params = {"base_url": f"http://127.0.0.1:{free_port()}/dav/", "retries": 2, "retry_delay": 0.01}
    with FsspecMover(params) as mover, pytest.raises(TransferError) as info, caplog.at_level(logging.WARNING):
        mover.put(source, "webdav://in/")
    assert "ConnectError" in str(info.value) and info.value.transient
    assert "(attempt 1 of 2), retrying" in caplog.text


def test_an_untrusted_certificate_is_not_retried(dav_server: Nginx, tmp_path: Path, source: Path) -> None:
    params = {"base_url": dav_server.url("/dav/", tls=True), "retries": 3, "retry_delay": 0.01}
    with FsspecMover(params) as mover, pytest.raises(TransferError) as info:
        mover.put(source, "webdav://in/")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and not info.value.transient


def test_credentials_in_base_url_log_in_and_a_wrong_password_never_shows(dav_server: Nginx, dav_root: Path,
                                                                        source: Path, tmp_path: Path) -> None:
    good = {"base_url": dav_server.url("/private/", user=USER, password=PASSWORD), "retry_delay": 0.01}
    with FsspecMover(good) as mover:
        mover.put(source, "webdav://in/")
        assert Path(mover.get("webdav://in/data.nc", f"{tmp_path}/back/")).read_bytes() == source.read_bytes()
    assert (dav_server.root / "private" / "in" / "data.nc").is_file()
    wrong = {"base_url": dav_server.url("/private/", user=USER, password="wrong-pw-x9"), "retries": 3}
    with FsspecMover(wrong) as mover, pytest.raises(TransferError) as info:
        mover.get("webdav://in/data.nc", tmp_path / "no.nc")
    assert "401" in str(info.value) and not info.value.transient
    assert "wrong-pw-x9" not in str(info.value) and PASSWORD not in str(info.value)


def test_a_storage_option_the_filesystem_does_not_take_is_one_clear_error(dav_params: Params, source: Path) -> None:
    with FsspecMover(dav_params(no_such_option="1")) as mover, pytest.raises(TransferError) as info:
        mover.put(source, "webdav://in/")
    assert "no_such_option" in str(info.value) and not info.value.transient
    assert "\n" not in str(info.value)


def test_one_filesystem_serves_every_directory(dav_server: Nginx, dav_params: Params, dav_dir: str,
                                               source: Path) -> None:
    before = dav_server.connections()
    with FsspecMover(dav_params()) as mover:
        for sub in ("a", "b/c", "d"):
            mover.put(source, f"webdav://{dav_dir}/{sub}/")
        assert mover.connections_opened == 1
    assert dav_server.connections() - before == 1


def test_the_upload_is_moved_into_place_with_webdav_move(dav_server: Nginx, dav_params: Params, dav_dir: str,
                                                         dav_root: Path, source: Path) -> None:
    """One MOVE on the server, not webdav4's COPY then DELETE; no temporary name is left."""
    before = len(dav_server.requests())
    with FsspecMover(dav_params()) as mover:
        mover.put(source, f"webdav://{dav_dir}/")
    methods = [entry.method for entry in dav_server.requests()[before:]]
    assert methods.count("MOVE") == 1 and "COPY" not in methods
    assert sorted(p.name for p in (dav_root / dav_dir).iterdir()) == ["data.nc"]


def test_delete_of_a_missing_file_is_not_retried(dav_server: Nginx, dav_params: Params, dav_dir: str) -> None:
    with FsspecMover(dav_params(retries=3)) as mover, pytest.raises(TransferError) as info:
        mover.delete(f"webdav://{dav_dir}/missing.nc")
    assert "missing.nc" in str(info.value) and not info.value.transient


class Typed:
    def __init__(self, anon: bool = False, block_size: int = 5, timeout: float = 1.5, name: str = "x") -> None:
        pass


class Open(Typed):
    def __init__(self, anon: bool = False, **kwargs: Any) -> None:
        pass


def test_text_options_take_the_type_of_the_constructors_default() -> None:
    params = {"anon": "yes", "block_size": "4096", "timeout": "2.5", "name": "007", "retries": "5"}
    assert storage_options(params, Typed) == {"anon": True, "block_size": 4096, "timeout": 2.5, "name": "007"}


def test_keys_a_closed_constructor_does_not_take_are_left_out_and_an_open_one_gets_them() -> None:
    params = {"anon": "no", "ssh_key_filename": "~/.ssh/id", "connection_uptime": "5"}
    assert storage_options(params, Typed) == {"anon": False}
    assert storage_options(params, Open) == {"anon": False, "ssh_key_filename": "~/.ssh/id"}


def test_a_bad_typed_option_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^block_size: expected an integer, got 'big'$"):
        storage_options({"block_size": "big"}, Typed)


def test_auth_as_a_yaml_list_logs_in(dav_server: Nginx, source: Path) -> None:
    params = {"base_url": dav_server.url("/private/"), "auth": [USER, PASSWORD]}
    with FsspecMover(params) as mover:
        assert mover.size(mover.put(source, "webdav://yaml/")) == source.stat().st_size
