"""What HttpMover does beyond the shared contract, against nginx: resuming, retries, redirects,
authentication, TLS trust, WebDAV upload details."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from trollmoves_http.mover import CHUNK, HttpMover
from trollmoves_http.testing import PASSWORD, TOKEN, USER, CuttingProxy, Nginx, free_port

from trollmoves_core.checksum import ChecksumMismatch, file_digest
from trollmoves_core.exceptions import ConfigError, TransferError


def served(nginx: Nginx, path: str, data: bytes) -> str:
    """Put ``data`` at ``path`` under the server's root; return the path."""
    local = nginx.root / path.lstrip("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return path


@pytest.fixture
def big(nginx: Nginx, dav_dir: str) -> tuple[str, bytes]:
    data = os.urandom(6 * CHUNK + 123)
    return served(nginx, dav_dir + "big.dat", data), data


# -- resuming an interrupted download ---------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_dropped_download_resumes_where_it_stopped(nginx: Nginx, mover: HttpMover, big: tuple[str, bytes],
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                     tls: bool) -> None:
    path, data = big
    upstream = nginx.tls_port if tls else nginx.port
    with CuttingProxy(upstream, cut_after=2 * CHUNK + 5000) as proxy, caplog.at_level(logging.WARNING):
        got = mover.get(proxy.url(path, tls=tls), tmp_path / "big.dat")
    assert Path(got).read_bytes() == data
    first, second = nginx.requests(path)
    assert (first.status, first.range) == (200, None)
    assert second.status == 206
    offset = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 2 * CHUNK + 5000
    assert second.sent < len(data) - offset + 1000  # only the rest came again (plus headers)
    assert proxy.connections == 2
    assert "resuming" in caplog.text


def test_a_file_changed_before_the_resume_is_fetched_again_whole(nginx: Nginx, mover: HttpMover,
                                                                  big: tuple[str, bytes], tmp_path: Path) -> None:
    path, _old = big
    new = os.urandom(3 * CHUNK)
    local = nginx.root / path.lstrip("/")

    def replace_once(_nbytes: int) -> None:
        if not (tmp_path / "replaced").exists():
            (tmp_path / "replaced").touch()
            (tmp_path / "new.dat").write_bytes(new)
            os.replace(tmp_path / "new.dat", local)  # nginx keeps sending the old file it opened

    with CuttingProxy(nginx.port, cut_after=2 * CHUNK + 5000) as proxy:
        got = mover.get(proxy.url(path), tmp_path / "got.dat", progress=replace_once)
    assert Path(got).read_bytes() == new
    _first, second = nginx.requests(path)
    assert second.range is not None and second.status == 200  # If-Range did not match: the whole new file


def test_a_file_shorter_than_what_was_fetched_is_fetched_again_whole(nginx: Nginx, mover: HttpMover,
                                                                     tmp_path: Path) -> None:
    """416 in answer to the resume: the file shrank, yet kept its Last-Modified (the only validator)."""
    path = served(nginx, "/no-etag/shrinks.dat", os.urandom(6 * CHUNK))
    local = nginx.root / path.lstrip("/")
    stamp = local.stat().st_mtime_ns
    new = os.urandom(CHUNK // 2)

    def shrink_once(_nbytes: int) -> None:
        if local.stat().st_size != len(new):
            local.write_bytes(new)
            os.utime(local, ns=(stamp, stamp))

    with CuttingProxy(nginx.port, cut_after=2 * CHUNK + 5000) as proxy:
        got = mover.get(proxy.url(path), tmp_path / "got.dat", progress=shrink_once)
    assert Path(got).read_bytes() == new
    assert [(r.status, r.range is not None) for r in nginx.requests(path)] == [(200, False), (416, True), (200, False)]


def test_without_resumes_a_dropped_download_is_retried_from_the_start(nginx: Nginx, http_params: dict[str, Any],
                                                                       big: tuple[str, bytes], tmp_path: Path) -> None:
    path, data = big
    with HttpMover({**http_params, "resumes": 0}) as mover, \
            CuttingProxy(nginx.port, cut_after=CHUNK) as proxy:
        got = mover.get(proxy.url(path), tmp_path / "big.dat")
    assert Path(got).read_bytes() == data
    assert [(r.status, r.range) for r in nginx.requests(path)][-1] == (200, None)
    assert sorted(os.listdir(tmp_path)) == ["big.dat"]


def test_a_download_that_keeps_dropping_fails_as_transient(nginx: Nginx, http_params: dict[str, Any],
                                                           big: tuple[str, bytes], tmp_path: Path) -> None:
    path, _data = big
    with HttpMover({**http_params, "resumes": 1, "retries": 2}) as mover, \
            CuttingProxy(nginx.port, cut_after=CHUNK + 5000, cuts=100) as proxy, \
            pytest.raises(TransferError, match="connection failed") as info:
        mover.get(proxy.url(path), tmp_path / "big.dat")
    assert info.value.transient
    assert proxy.connections == 4  # (one GET + one resume) per attempt
    assert os.listdir(tmp_path) == []


# -- which failures are retried ---------------------------------------------------------------

def test_404_is_permanent_and_asked_once(nginx: Nginx, mover: HttpMover, dav_dir: str, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="HTTP 404 Not Found: no such file") as info:
        mover.get(nginx.url(dav_dir + "missing.dat"), tmp_path / "m.dat")
    assert not info.value.transient
    assert len(nginx.requests(dav_dir + "missing.dat")) == 1


def test_503_is_transient_and_retried(nginx: Nginx, mover: HttpMover, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="HTTP 503") as info:
        mover.get(nginx.url("/unavailable/x.dat"), tmp_path / "x.dat")
    assert info.value.transient
    assert [r.status for r in nginx.requests("/unavailable/x.dat")] == [503] * mover.attempts


def test_refused_connection_is_transient(http_params: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    refused = r"failed: connection failed: Failed to establish a new connection: \[Errno 111\] Connection refused$"
    with HttpMover({**http_params, "retries": 1}) as mover, pytest.raises(TransferError, match=refused) as info:
        mover.get(f"http://127.0.0.1:{port}/x.dat", tmp_path / "x.dat")
    assert info.value.transient
    assert "\n" not in str(info.value)


# -- redirects ----------------------------------------------------------------------------------

def test_redirects_are_followed(nginx: Nginx, mover: HttpMover, dav_dir: str, tmp_path: Path) -> None:
    path = served(nginx, dav_dir + "moved.dat", b"moved here")
    got = mover.get(nginx.url("/redirect" + path), tmp_path / "moved.dat")
    assert Path(got).read_bytes() == b"moved here"
    assert mover.size(nginx.url("/redirect" + path)) == len(b"moved here")
    assert [r.status for r in nginx.requests("/redirect" + path)] == [302, 302]


def test_a_redirect_loop_is_cut_short(nginx: Nginx, http_params: dict[str, Any], tmp_path: Path) -> None:
    with HttpMover({**http_params, "max_redirects": 2}) as mover, \
            pytest.raises(TransferError, match="too many redirects") as info:
        mover.get(nginx.url("/loop/x.dat"), tmp_path / "x.dat")
    assert not info.value.transient
    assert len(nginx.requests("/loop/x.dat")) + len(nginx.requests("/loop/")) == 3


# -- authentication -----------------------------------------------------------------------------

def test_basic_auth_from_the_uri(nginx: Nginx, mover: HttpMover, payload_file: Path, tmp_path: Path) -> None:
    where = nginx.url("/private/uri/", user=USER, password=PASSWORD)
    delivered = mover.put(payload_file, where)
    assert PASSWORD not in delivered
    assert Path(mover.get(where + payload_file.name, f"{tmp_path}/back/")).read_bytes() == payload_file.read_bytes()


def test_basic_auth_from_the_parameters(nginx: Nginx, http_params: dict[str, Any], payload_file: Path) -> None:
    with HttpMover({**http_params, "username": USER, "password": PASSWORD}) as mover:
        mover.put(payload_file, nginx.url("/private/params/", tls=True))
    assert (nginx.root / "private" / "params" / payload_file.name).exists()


def test_a_wrong_password_is_one_line_without_the_password(nginx: Nginx, mover: HttpMover, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    served(nginx, "/private/secret.dat", b"secret")
    url = nginx.url("/private/secret.dat", user=USER, password="not-the-" + PASSWORD)
    with caplog.at_level(logging.DEBUG), pytest.raises(TransferError) as info:
        mover.get(url, tmp_path / "s.dat")
    message = str(info.value)
    assert message == (f"get {nginx.url('/private/secret.dat', user=USER)} to {tmp_path}/s.dat failed: "
                       "HTTP 401 Unauthorized: the server refused these credentials")
    assert not info.value.transient
    assert len(nginx.requests("/private/secret.dat")) == 1
    assert PASSWORD not in caplog.text


def test_no_credentials_says_how_to_give_them(nginx: Nginx, mover: HttpMover, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    served(nginx, "/private/secret.dat", b"secret")
    with pytest.raises(TransferError, match="HTTP 401 Unauthorized: the server wants credentials: give user"):
        mover.get(nginx.url("/private/secret.dat"), tmp_path / "s.dat")


def test_netrc_supplies_credentials(nginx: Nginx, mover: HttpMover, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    served(nginx, "/private/netrc.dat", b"from netrc")
    assert Path(mover.get(nginx.url("/private/netrc.dat"), tmp_path / "n.dat")).read_bytes() == b"from netrc"


def test_netrc_supplies_the_password_of_the_uri_user(nginx: Nginx, mover: HttpMover, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    monkeypatch.setenv("NETRC", str(netrc))
    served(nginx, "/private/netrc-user.dat", b"user from the uri")
    got = mover.get(nginx.url("/private/netrc-user.dat", user=USER), tmp_path / "n.dat")
    assert Path(got).read_bytes() == b"user from the uri"
    with pytest.raises(TransferError, match="HTTP 401"):  # another login: the netrc entry is not used
        mover.get(nginx.url("/private/netrc-user.dat", user="someone-else"), tmp_path / "n.dat")


def test_bearer_token(nginx: Nginx, http_params: dict[str, Any], tmp_path: Path,
                      caplog: pytest.LogCaptureFixture) -> None:
    served(nginx, "/token/t.dat", b"for token holders")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with caplog.at_level(logging.DEBUG):
        for params in ({"token": TOKEN}, {"token_file": str(token_file)}):
            with HttpMover({**http_params, **params}) as mover:
                got = mover.get(nginx.url("/token/t.dat", tls=True), tmp_path / "t.dat")
                assert Path(got).read_bytes() == b"for token holders"
        with HttpMover({**http_params, "token": "wrong"}) as mover, pytest.raises(TransferError, match="HTTP 401"):
            mover.get(nginx.url("/token/t.dat"), tmp_path / "t.dat")
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("path", ["/unavailable/x.dat", "/redirect/unavailable/x.dat", "/redirect/dav/missing.dat"])
def test_query_string_tokens_stay_out_of_logs_and_errors(nginx: Nginx, mover: HttpMover, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture, path: str) -> None:
    # a presigned or SAS URL; nginx's redirects carry the query to the next address
    query = "?sv=2022-11-02&sig=SIG%2BSECRET&X-Amz-Signature=AMZSECRET&access_token=TOKSECRET"
    with caplog.at_level(logging.DEBUG, logger="trollmoves_core"), caplog.at_level(logging.DEBUG, "trollmoves_http"), \
            pytest.raises(TransferError) as info:
        mover.get(nginx.url(path + query, tls=True), tmp_path / "x.dat")
    assert nginx.requests(path + query)[0].status in (302, 503)  # the server got the tokens
    shown = caplog.text + str(info.value)
    assert "sig=***" in str(info.value) and "sv=2022-11-02" in str(info.value)
    assert not [secret for secret in ("SIG", "AMZSECRET", "TOKSECRET") if secret in shown], shown


@pytest.mark.parametrize(("params", "key"), [
    ({"token": "a", "token_file": "/etc/hostname"}, "token"),
    ({"token": "a", "username": "u"}, "token"),
    ({"token_file": "/nonexistent/token"}, "token_file"),
    ({"ca_certs": "/nonexistent/ca.pem"}, "ca_certs"),
    ({"timeout": "soon"}, "timeout"),
    ({"verify": "maybe"}, "verify"),
])
def test_bad_parameters_name_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}: "):
        HttpMover(params)


# -- TLS ----------------------------------------------------------------------------------------

def test_an_untrusted_certificate_is_one_clear_line(nginx: Nginx, dav_dir: str, tmp_path: Path) -> None:
    path = served(nginx, dav_dir + "tls.dat", b"tls")
    with HttpMover({"retry_delay": 0.01}) as mover, pytest.raises(TransferError) as info:
        mover.get(nginx.url(path, tls=True), tmp_path / "tls.dat")
    message = str(info.value)
    assert "TLS certificate verification failed: " in message and "ca_file" in message
    assert "\n" not in message
    assert not info.value.transient
    assert nginx.requests(path) == []  # refused before any request


def test_verify_false_accepts_any_certificate(nginx: Nginx, dav_dir: str, tmp_path: Path) -> None:
    path = served(nginx, dav_dir + "tls.dat", b"tls")
    with HttpMover({"verify": "false"}) as mover:
        assert Path(mover.get(nginx.url(path, tls=True), tmp_path / "tls.dat")).read_bytes() == b"tls"


# -- uploads ------------------------------------------------------------------------------------

@pytest.fixture
def payload_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "upload.dat"
    path.parent.mkdir()
    path.write_bytes(os.urandom(CHUNK + 1))
    return path


def test_put_goes_through_a_hidden_name_and_move(nginx: Nginx, mover: HttpMover, dav_dir: str,
                                                 payload_file: Path) -> None:
    mover.put(payload_file, nginx.url(dav_dir), expected=file_digest(payload_file, "sha256"))
    methods = [(r.method, r.status, r.uri.rsplit("/", 1)[1]) for r in nginx.requests()
               if r.uri.startswith(dav_dir)]
    assert [m[:2] for m in methods] == [("PUT", 201), ("HEAD", 200), ("MOVE", 204)]
    assert methods[0][2].startswith(".upload.dat.") and methods[0][2].endswith(".part")
    assert os.listdir(nginx.root / dav_dir.strip("/")) == ["upload.dat"]


def test_a_refused_put_leaves_no_temporary_file(nginx: Nginx, mover: HttpMover, dav_dir: str,
                                                payload_file: Path) -> None:
    announced = file_digest(payload_file, "sha256")
    payload_file.write_bytes(os.urandom(payload_file.stat().st_size))  # same size, other content
    with pytest.raises(ChecksumMismatch):
        mover.put(payload_file, nginx.url(dav_dir), expected=announced)
    assert os.listdir(nginx.root / dav_dir.strip("/")) == []
    assert [r.method for r in nginx.requests() if r.uri.startswith(dav_dir)] == ["PUT", "DELETE"]


def test_put_overwrites_an_existing_file(nginx: Nginx, mover: HttpMover, dav_dir: str, payload_file: Path) -> None:
    served(nginx, dav_dir + "upload.dat", b"old")
    mover.put(payload_file, nginx.url(dav_dir))
    assert (nginx.root / dav_dir.strip("/") / "upload.dat").read_bytes() == payload_file.read_bytes()


def test_a_server_without_move_says_what_to_do(nginx: Nginx, mover: HttpMover, http_params: dict[str, Any],
                                               payload_file: Path) -> None:
    with pytest.raises(TransferError, match="HTTP 405 Not Allowed: the server does not support WebDAV MOVE; "
                                            "set webdav_move = false") as info:
        mover.put(payload_file, nginx.url("/put-only/a/"))
    assert not info.value.transient
    assert not (nginx.root / "put-only" / "a").exists() or os.listdir(nginx.root / "put-only" / "a") == []
    with HttpMover({**http_params, "webdav_move": "false"}) as straight:
        straight.put(payload_file, nginx.url("/put-only/b/"))
    assert (nginx.root / "put-only" / "b" / "upload.dat").read_bytes() == payload_file.read_bytes()


def test_put_to_a_read_only_location_is_permanent(nginx: Nginx, mover: HttpMover, tmp_path: Path) -> None:
    (tmp_path / "small.dat").write_bytes(b"small")
    with pytest.raises(TransferError, match="HTTP 405 Not Allowed: the server does not allow this method") as info:
        mover.put(tmp_path / "small.dat", nginx.url("/static/"))
    assert not info.value.transient


def test_sessions_are_reused_across_files_and_after_errors(nginx: Nginx, mover: HttpMover, dav_dir: str,
                                                          tmp_path: Path) -> None:
    path = served(nginx, dav_dir + "a.dat", b"a")
    for _ in range(3):
        mover.get(nginx.url(path), tmp_path / "a.dat")
        with pytest.raises(TransferError):
            mover.get(nginx.url(dav_dir + "missing.dat"), tmp_path / "m.dat")
    assert mover.connections_opened == 1
    assert len({r.connection for r in nginx.requests() if r.uri.startswith(dav_dir)}) == 1
