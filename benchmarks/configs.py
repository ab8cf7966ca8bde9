"""The INI files both implementations read: upstream's format, loopback only, no multicast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOPIC = "/bench/data"
SERVER_PUB_PORT = 19010
"""First server's publisher port (``-p``); server ``k`` uses ``SERVER_PUB_PORT + k``."""
REQUEST_PORT = 19092
"""First server's ``request_port``; server ``k`` uses ``REQUEST_PORT + k``."""
CLIENT_PUB_PORT = 19020
SUFFIX = ".dat"


@dataclass(frozen=True)
class ServerSpec:
    index: int
    watch_dir: Path
    config: Path

    @property
    def pub_port(self) -> int:
        return SERVER_PUB_PORT + self.index

    @property
    def request_port(self) -> int:
        return REQUEST_PORT + self.index


def write_server_ini(path: Path, watch_dir: Path, index: int, extra: dict[str, str] | None = None) -> ServerSpec:
    """One chain ``[bench]`` announcing ``<watch_dir>/{name}.dat``, plus ``extra`` keys."""
    lines = [
        "[bench]",
        f"origin = {watch_dir}/{{name}}{SUFFIX}",
        f"topic = {TOPIC}",
        f"request_port = {REQUEST_PORT + index}",
        "request_address = 127.0.0.1",
        "station = bench",
        *(f"{k} = {v}" for k, v in (extra or {}).items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return ServerSpec(index, watch_dir, path)


def write_client_ini(path: Path, servers: list[ServerSpec], destination: str, *,
                     transfer_req_timeout: float | None = None, extra: dict[str, str] | None = None) -> Path:
    """One chain ``[bench]`` pulling from every server into ``destination`` (a URL)."""
    providers = " ".join(f"127.0.0.1:{s.pub_port}" for s in servers)
    lines = [
        "[bench]",
        f"providers = {providers}",
        f"destination = {destination}",
        f"topic = {TOPIC}",
        f"publish_port = {CLIENT_PUB_PORT}",
        "nameservers = false",
    ]
    if transfer_req_timeout is not None:
        lines.append(f"transfer_req_timeout = {transfer_req_timeout:g}")
    lines += [f"{k} = {v}" for k, v in (extra or {}).items()]
    path.write_text("\n".join(lines) + "\n")
    return path
