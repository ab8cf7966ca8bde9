"""The nginx fixture itself: what the mover tests (and other plugins' tests) rely on."""

from __future__ import annotations

import pytest
import requests
from trollmoves_http import testing as nginx_testing
from trollmoves_http.testing import PASSWORD, TOKEN, USER, CuttingProxy, Nginx


def test_https_is_trusted_only_with_the_fixture_ca(nginx: Nginx) -> None:
    (nginx.root / "hello.txt").write_bytes(b"hello")
    assert requests.get(nginx.url("/hello.txt", tls=True), verify=str(nginx.ca_file), timeout=5).content == b"hello"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(nginx.url("/hello.txt", tls=True), verify=True, timeout=5)


def test_ranges_dav_and_auth(nginx: Nginx, dav_dir: str) -> None:
    data = bytes(range(256)) * 4
    put = requests.put(nginx.url(dav_dir + "a/b.dat"), data=data, timeout=5)
    assert put.status_code == 201
    assert (nginx.root / dav_dir.strip("/") / "a" / "b.dat").read_bytes() == data
    part = requests.get(nginx.url(dav_dir + "a/b.dat"), headers={"Range": "bytes=1000-"}, timeout=5)
    assert (part.status_code, part.content) == (206, data[1000:])
    assert requests.get(nginx.url("/private/"), timeout=5).status_code == 401
    assert requests.put(nginx.url("/private/x.dat"), data=b"x", auth=(USER, PASSWORD), timeout=5).ok
    assert requests.get(nginx.url("/private/x.dat"), auth=(USER, "wrong"), timeout=5).status_code == 401
    (nginx.root / "token" / "t.dat").write_bytes(b"t")
    assert requests.get(nginx.url("/token/t.dat"), timeout=5).status_code == 401
    assert requests.get(nginx.url("/token/t.dat"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).ok
    assert [(r.method, r.status) for r in nginx.requests(dav_dir + "a/b.dat")] == [("PUT", 201), ("GET", 206)]


@pytest.mark.skipif(not nginx_testing.propfind_available(), reason="needs libnginx-mod-http-dav-ext")
def test_propfind_lists_a_directory(nginx: Nginx, dav_dir: str) -> None:
    requests.put(nginx.url(dav_dir + "listed.dat"), data=b"x", timeout=5)
    reply = requests.request("PROPFIND", nginx.url(dav_dir), headers={"Depth": "1"}, timeout=5)
    assert reply.status_code == 207
    assert "listed.dat" in reply.text


def test_cutting_proxy_drops_the_first_reply(nginx: Nginx) -> None:
    (nginx.root / "cut.dat").write_bytes(b"x" * 100_000)
    with CuttingProxy(nginx.port, cut_after=5000) as proxy:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(proxy.url("/cut.dat"), timeout=5).raise_for_status()
        assert len(requests.get(proxy.url("/cut.dat"), timeout=5).content) == 100_000


def test_directories_list_as_html_and_the_log_keeps_odd_ranges(nginx: Nginx, dav_dir: str) -> None:
    requests.put(nginx.url(dav_dir + "listed.dat"), data=b"0123456789" * 4, timeout=5).raise_for_status()
    listing = requests.get(nginx.url(dav_dir), timeout=5)
    assert listing.status_code == 200 and 'href="listed.dat"' in listing.text
    requests.get(nginx.url(dav_dir + "listed.dat"), headers={"Range": "bytes=0-9, 20-29"}, timeout=5)
    assert nginx.requests(dav_dir + "listed.dat")[-1].range == "bytes=0-9, 20-29"
