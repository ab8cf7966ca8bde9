"""Our announcements' extra keys (``size``, ``integrity``) against the upstream 0.19 client: it
ignores them for the transfer and carries them on in its result messages."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from support.bus import wait_until
from support.files import write_file
from support.upstream import upstream_process  # noqa: F401 - fixture
from test_server_interop import client_results, our_server, prime, start_upstream_client  # noqa: F401 - fixture

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


@pytest.mark.parametrize(("method", "mode"), [("sha256", "hardlink"), ("sha512", "hardlink"), ("sha256", "copy")])
def test_upstream_client_moves_files_announced_with_checksums(our_server, upstream_process, tmp_path,  # noqa: F811
                                                              method, mode):
    """Also with copies our server's mover hashed as it stored them: its push replies then carry
    ``copy_verified``, which the upstream client ignores."""
    server = our_server(checksum=method, connection_parameters__mode=mode)
    recorder, out = start_upstream_client(upstream_process, tmp_path, f"127.0.0.1:{server.port}")
    contents = {f"f{i}.dat": os.urandom(5000 * (i + 1)) for i in range(4)}
    try:
        prime(server, recorder, out)
        for name, content in contents.items():
            write_file(server.inbox, name, content)
        assert wait_until(lambda: set(contents) <= {m.data["uid"] for m in client_results(recorder)}, timeout=60), \
            server.log()
    finally:
        recorder.close()
    for name, content in contents.items():
        assert (out / name).read_bytes() == content
        assert (os.stat(out / name).st_ino == os.stat(server.inbox / name).st_ino) == (mode == "hardlink")
        result = next(m for m in client_results(recorder) if m.data["uid"] == name)
        assert result.data["size"] == len(content)
        assert result.data["integrity"] == {"method": method,
                                            "value": base64.b64encode(hashlib.new(method, content).digest()).decode()}
    assert server.stop() == 0
    assert "push refused" not in server.log() and "request rejected" not in server.log()
