"""URIs, config loading, the connection pool and retries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from trollmoves_core.config import parse_key_values, read_ini, read_yaml
from trollmoves_core.exceptions import ConfigError, TransferError
from trollmoves_core.patterns import FilePattern
from trollmoves_core.pool import ConnectionPool
from trollmoves_core.retry import is_transient, with_retries
from trollmoves_core.uri import parse_uri, redact, target_path


def test_parse_uri_reads_every_part() -> None:
    loc = parse_uri("sftp://bob:s3cret@host.example:2222/data/in/?timeout=5")
    assert (loc.scheme, loc.user, loc.password, loc.host, loc.port, loc.path, loc.query) == \
        ("sftp", "bob", "s3cret", "host.example", 2222, "/data/in/", {"timeout": "5"})
    assert "s3cret" not in repr(loc) and "s3cret" not in str(loc)
    assert loc.geturi(with_password=True) == "sftp://bob:s3cret@host.example:2222/data/in/?timeout=5"


def test_plain_paths_and_odd_names_stay_raw() -> None:
    assert parse_uri("/data/a b#c.nc").path == "/data/a b#c.nc"
    assert parse_uri("file:///data/a b#c.nc").path == "/data/a b#c.nc"
    assert parse_uri("/data/x").scheme == "file"


def test_redact_removes_only_the_password() -> None:
    assert redact("ftp://user:pw@host:21/dir/") == "ftp://user@host:21/dir/"
    assert redact("/plain/path") == "/plain/path"


@pytest.mark.parametrize(("uri", "redacted"), [
    # an Azure SAS: only the signature is a secret
    ("https://acct.blob.core.windows.net/c/a.h5?sv=2022-11-02&se=2026-12-04T00%3A00Z&sp=r&sig=K3y%2Bv%3D",
     "https://acct.blob.core.windows.net/c/a.h5?sv=2022-11-02&se=2026-12-04T00%3A00Z&sp=r&sig=***"),
    # an S3 presigned URL: the signature, the session token and the credential
    ("https://b.s3.amazonaws.com/k.nc?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261204"
     "&X-Amz-Security-Token=FwoG&X-Amz-Expires=300&X-Amz-Signature=9f2e",
     "https://b.s3.amazonaws.com/k.nc?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
     "&X-Amz-Security-Token=***&X-Amz-Expires=300&X-Amz-Signature=***"),
    ("https://cache.example/a.bufr4?token=abc.def-ghi", "https://cache.example/a.bufr4?token=***"),
    ("https://h/x?ACCESS_TOKEN=t1&Api-Key=t2&apikey=t3&api_key=t4&key=t5&Password=t6&secret=t7&Signature=t8",
     "https://h/x?ACCESS_TOKEN=***&Api-Key=***&apikey=***&api_key=***&key=***&Password=***&secret=***"
     "&Signature=***"),
    ("https://h/cb#access_token=t1&state=s", "https://h/cb#access_token=***&state=s"),
    ("https://u:pw@h/x?token=t1&n=1", "https://u@h/x?token=***&n=1"),
    # names of files, and words that only end like a secret's name, are kept
    ("mqtts://everyone@h:8883?password_file=/etc/w.pw&token_file=/etc/t&keyword=viirs&monkey=1",
     "mqtts://everyone@h:8883?password_file=/etc/w.pw&token_file=/etc/t&keyword=viirs&monkey=1"),
    ("https://h/x?token=", "https://h/x?token="),
    ("/data/plain=path", "/data/plain=path"),
    # `key` alone is the generic API-key name (Google's ?key=AIza...): masked, even when it looks like a file
    ("https://h/x?key=AIzaSyA1&key=T_2026.grib", "https://h/x?key=***&key=***"),
    # OAuth codes, passphrases, Java session ids, Authorization headers put in the query
    ("https://h/cb?code=4%2F0Ad&state=s&passphrase=p1&ssh_key_passphrase=p2&Authorization=Bearer%20t",
     "https://h/cb?code=***&state=s&passphrase=***&ssh_key_passphrase=***&Authorization=***"),
    ("https://h/app;jsessionid=A1B2;v=1?n=1", "https://h/app;jsessionid=***;v=1?n=1"),
    # bracketed names (PHP, Rails): secret when any part is, also percent-encoded
    ("https://h/x?auth[token]=t1&user[password]=t2&auth%5Btoken%5D=t3&page[size]=10&filter[sort_key]=name",
     "https://h/x?auth[token]=***&user[password]=***&auth%5Btoken%5D=***&page[size]=10&filter[sort_key]=name"),
    # the explicit *_key names are masked, unless their value is a path
    ("https://h/x?x-api-key=t1&access_key=t2&aws_secret_access_key=t3&secret_key=t4&private_key=t5&sas_key=t6"
     "&account_key=t7&subscription-key=t8",
     "https://h/x?x-api-key=***&access_key=***&aws_secret_access_key=***&secret_key=***&private_key=***&sas_key=***"
     "&account_key=***&subscription-key=***"),
    ("sftp://u@h/d/?private_key=/home/u/.ssh/id&secret_key=~/.keys/s&api_key=./k&access_key=%2Fetc%2Fk",
     "sftp://u@h/d/?private_key=/home/u/.ssh/id&secret_key=~/.keys/s&api_key=./k&access_key=%2Fetc%2Fk"),
    # other *_key names, and every connection parameter of the movers and buses that names a file, are kept
    ("https://h/x?sort_key=name&ssh_key=/home/u/.ssh/id&ssh_key=id_rsa&host_key=h&client_key=c",
     "https://h/x?sort_key=name&ssh_key=/home/u/.ssh/id&ssh_key=id_rsa&host_key=h&client_key=c"),
    ("sftp://u@h/d/?ssh_key_filename=/k1&ssh_private_key_file=/k2&known_hosts=/kh&key_file=/k3&cert_file=/c"
     "&ca_file=/ca&cafile=/ca&ca_certs=/ca&token_file=/t&password_file=/p&server_secret_key_file=/s"
     "&server_public_key_file=/sp&client_secret_key_file=/cs&publisher_public_key_file=/pp"
     "&clients_public_keys_directory=/dir",
     "sftp://u@h/d/?ssh_key_filename=/k1&ssh_private_key_file=/k2&known_hosts=/kh&key_file=/k3&cert_file=/c"
     "&ca_file=/ca&cafile=/ca&ca_certs=/ca&token_file=/t&password_file=/p&server_secret_key_file=/s"
     "&server_public_key_file=/sp&client_secret_key_file=/cs&publisher_public_key_file=/pp"
     "&clients_public_keys_directory=/dir"),
    # in a lone URI the whole value is masked, whatever it holds
    ("https://h/x?pass=a,b)c'd&n=1", "https://h/x?pass=***&n=1"),
    # a path is only a path for the *_key names: a base64 token may start with "/"
    ("https://h/x?sig=/Abc%2B&token=~t&private_key=MIIEv", "https://h/x?sig=***&token=***&private_key=***"),
])
def test_redact_masks_tokens_in_the_query(uri: str, redacted: str) -> None:
    assert redact(uri) == redacted


@pytest.mark.parametrize(("text", "redacted"), [
    ("see (https://x/a?sig=abc), then", "see (https://x/a?sig=***), then"),
    ("[the file](https://x/a?token=t1) failed", "[the file](https://x/a?token=***) failed"),
    ("urls: https://x/a?sig=s1, https://x/b?code=c1; done", "urls: https://x/a?sig=***, https://x/b?code=***; done"),
    ('<a href="https://x/a?api_key=k1">x</a> and <https://x/b?key=k2>',
     '<a href="https://x/a?api_key=***">x</a> and <https://x/b?key=***>'),
    ("fetch https://x/a?sig=s1\tthen 'https://x/b?auth[token]=t2' ok",
     "fetch https://x/a?sig=***\tthen 'https://x/b?auth[token]=***' ok"),
    ("cannot read https://x/a?sort_key=name&private_key=/home/u/.ssh/id (denied)",
     "cannot read https://x/a?sort_key=name&private_key=/home/u/.ssh/id (denied)"),
])
def test_redact_ends_values_where_a_uri_quoted_in_free_text_ends(text: str, redacted: str) -> None:
    assert redact(text) == redacted


def test_redact_masks_tokens_of_uris_quoted_in_free_text() -> None:
    text = ("get 'https://cache.example/a.h5?sig=S1&sv=1' to /data/a.h5 failed (attempt 1 of 3): "
            "redirected to https://b.s3.example/a.h5?X-Amz-Signature=S2 and \"https://h/?apikey=S3\"")
    assert redact(text) == ("get 'https://cache.example/a.h5?sig=***&sv=1' to /data/a.h5 failed (attempt 1 of 3): "
                            "redirected to https://b.s3.example/a.h5?X-Amz-Signature=*** and \"https://h/?apikey=***\"")
    assert redact("ftp://u:pw@h/x?token=S4 refused") == "ftp://u:***@h/x?token=*** refused"


def test_bad_port_is_named() -> None:
    with pytest.raises(ValueError, match=r"^invalid port in URI 'ftp://\*\*\*@host:99999/x'$"):
        parse_uri("ftp://u:pw@host:99999/x")


def test_unparseable_uri_never_echoes_the_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_uri("s3://AKID:abc/def:ghi@bucket/key")
    assert "abc" not in str(info.value) and "ghi" not in str(info.value)
    assert "***@bucket/key" in str(info.value)


def test_target_path_rule() -> None:
    assert target_path("/out/", "a.nc") == "/out/a.nc"
    assert target_path("/out/b.nc", "a.nc") == "/out/b.nc"


def test_file_pattern_directory_and_match() -> None:
    pattern = FilePattern("/data/in/{platform}_{start_time:%Y%m%d%H%M}.dat")
    assert pattern.directory == Path("/data/in") and not pattern.recursive
    fields = pattern.match("/data/in/noaa19_202401020304.dat")
    assert fields["platform"] == "noaa19" and fields["start_time"].minute == 4
    assert pattern.match("/data/in/other.txt") is None
    nested = FilePattern("/data/{date:%Y%m%d}/{name}.nc")
    assert nested.directory == Path("/data") and nested.recursive


def test_ini_defaults_are_inherited_and_errors_are_located(tmp_path: Path) -> None:
    ini = tmp_path / "server.ini"
    ini.write_text("[DEFAULT]\nrequest_port = 9092\n[chain]\norigin = /in/{x}.dat\nremove_delay = soon\n"
                   "delete = maybe\npattern = %Y%m%d\n")
    section = read_ini(ini)["chain"]
    assert section.get_int("request_port") == 9092
    assert section["pattern"] == "%Y%m%d"
    with pytest.raises(ConfigError, match=rf"^{ini}: \[chain\] remove_delay: expected a number, got 'soon'$"):
        section.get_float("remove_delay")
    with pytest.raises(ConfigError, match=r"\[chain\] delete: expected true/false, got 'maybe'"):
        section.get_bool("delete")
    with pytest.raises(ConfigError, match=r"\[chain\] topic: required key is missing"):
        section.require("topic")


def test_ini_syntax_error_is_one_line(tmp_path: Path) -> None:
    ini = tmp_path / "bad.ini"
    ini.write_text("no section header\n")
    with pytest.raises(ConfigError) as info:
        read_ini(ini)
    assert str(info.value).startswith(f"{ini}: ") and "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read: No such file or directory"):
        read_yaml(tmp_path / "nope.yaml")


def test_key_values_stay_strings() -> None:
    assert parse_key_values(["password=0123", "passive=false", "x=a=b"]) == \
        {"password": "0123", "passive": "false", "x": "a=b"}


class FakeConnection:
    def __init__(self, key: object) -> None:
        self.key, self.alive, self.closed = key, True, False


def test_pool_reuses_per_key_and_closes_after_idle_timeout() -> None:
    closed: list[FakeConnection] = []
    pool = ConnectionPool(FakeConnection, closed.append, lambda c: c.alive, idle_timeout=0.2)
    with pool.connection("a") as first:
        pass
    with pool.connection("a") as second:
        pass
    with pool.connection("b"):
        pass
    assert first is second and pool.opened == 2
    deadline = time.monotonic() + 3
    while len(closed) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {c.key for c in closed} == {"a", "b"}


def test_pool_replaces_dead_connections_and_discards_after_errors() -> None:
    closed: list[FakeConnection] = []
    pool = ConnectionPool(FakeConnection, closed.append, lambda c: c.alive, idle_timeout=30)
    with pool.connection("a") as first:
        pass
    first.alive = False
    with pool.connection("a") as second:
        pass
    assert second is not first and closed == [first]
    with pytest.raises(RuntimeError), pool.connection("a") as third:
        raise RuntimeError("broken transfer")
    assert third is second and closed[-1] is third
    pool.close_all()


def test_pool_tidies_an_idle_connection_once_and_keeps_it() -> None:
    closed: list[FakeConnection] = []
    tidied: list[FakeConnection] = []
    pool = ConnectionPool(FakeConnection, closed.append, lambda c: c.alive, idle_timeout=30,
                          tidy=tidied.append, tidy_after=0.05)
    with pool.connection("a") as first:
        time.sleep(0.2)  # in use: not tidied
    assert tidied == []
    deadline = time.monotonic() + 3
    while not tidied and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert tidied == [first] and closed == []
    with pool.connection("a") as again:
        pass
    assert again is first and pool.opened == 1
    pool.close_all()
    assert closed == [first]


def test_pool_gives_concurrent_users_their_own_connection() -> None:
    pool = ConnectionPool(FakeConnection, lambda c: None, idle_timeout=30)
    inside = threading.Barrier(2)
    seen = []

    def use() -> None:
        with pool.connection("a") as conn:
            seen.append(conn)
            inside.wait(5)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert seen[0] is not seen[1] and pool.opened == 2
    pool.close_all()


def test_retries_transient_errors_with_backoff_then_succeeds() -> None:
    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "ok"

    assert with_retries(flaky, what="put x", attempts=3, base_delay=0.5, sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0]


def test_no_retry_for_permission_or_auth_errors() -> None:
    calls = []

    def denied() -> None:
        calls.append(1)
        raise TransferError("530 Login incorrect", transient=False)

    with pytest.raises(TransferError):
        with_retries(denied, what="put x", attempts=5, sleep=lambda s: None)
    assert len(calls) == 1
    assert not is_transient(PermissionError("no"))
    assert is_transient(TimeoutError())
