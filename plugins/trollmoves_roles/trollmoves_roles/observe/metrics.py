"""Prometheus metrics for the roles: counters, gauges and histograms rendered in the text
exposition format (0.0.4) on an optional HTTP port, stdlib only.

:class:`RoleMetrics` holds the metrics every role reports (see ``docs/observability.md``);
:class:`MetricsServer` serves a registry at ``http://<bind>:<port>/metrics`` from a daemon
thread, bound to 127.0.0.1 unless told otherwise. A process serving metrics also writes an
endpoint file (:func:`write_endpoint`) so that ``trollmoves status CONFIG`` finds it from the
config path alone.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOG = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_PEERS = 1000
"""Peers tracked for ``last seen``; the longest silent is forgotten first."""

Labels = tuple[tuple[str, str], ...]


def _labels(values: Mapping[str, object]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in values.items()))


def _format_labels(labels: Labels, extra: Labels = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if value != int(value) else str(int(value))


class _Metric:
    TYPE = ""

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self._lock = threading.Lock()

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.TYPE}", *self._samples()]

    def _samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A value that only goes up, per label set."""

    TYPE = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        key = _labels(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: object) -> float:
        with self._lock:
            return self._values.get(_labels(labels), 0.0)

    def _samples(self) -> list[str]:
        with self._lock:
            return [f"{self.name}{_format_labels(k)} {_format_value(v)}" for k, v in sorted(self._values.items())]


class Gauge(_Metric):
    """A value per label set, set directly or read from ``function`` at each scrape."""

    TYPE = "gauge"

    def __init__(self, name: str, help_text: str,
                 function: Callable[[], Mapping[Labels, float] | float] | None = None) -> None:
        super().__init__(name, help_text)
        self._values: dict[Labels, float] = {}
        self.function = function

    def set(self, value: float, **labels: object) -> None:
        with self._lock:
            self._values[_labels(labels)] = value

    def _samples(self) -> list[str]:
        with self._lock:
            values = dict(self._values)
        if self.function is not None:
            try:
                produced = self.function()
            except Exception as err:  # a scrape must not fail because one gauge did
                LOG.debug("Gauge %s failed: %s", self.name, err)
                produced = {}
            values.update(produced if isinstance(produced, Mapping) else {(): float(produced)})
        return [f"{self.name}{_format_labels(k)} {_format_value(v)}" for k, v in sorted(values.items())]


class Histogram(_Metric):
    """Observations counted in cumulative ``le`` buckets, with their sum and count, per label set."""

    TYPE = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float] = DURATION_BUCKETS) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets))
        self._values: dict[Labels, list[float]] = {}  # bucket counts..., +Inf count, sum

    def observe(self, value: float, **labels: object) -> None:
        key = _labels(labels)
        with self._lock:
            row = self._values.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    row[index] += 1
            row[-2] += 1
            row[-1] += value

    def count(self, **labels: object) -> int:
        with self._lock:
            row = self._values.get(_labels(labels))
            return int(row[-2]) if row else 0

    def _samples(self) -> list[str]:
        lines = []
        with self._lock:
            for key, row in sorted(self._values.items()):
                for bound, count in zip(self.buckets, row, strict=False):
                    lines.append(f"{self.name}_bucket{_format_labels(key, (('le', _format_value(bound)),))} "
                                 f"{_format_value(count)}")
                lines.append(f"{self.name}_bucket{_format_labels(key, (('le', '+Inf'),))} {_format_value(row[-2])}")
                lines.append(f"{self.name}_sum{_format_labels(key)} {_format_value(row[-1])}")
                lines.append(f"{self.name}_count{_format_labels(key)} {_format_value(row[-2])}")
        return lines


class Registry:
    """The metrics of one process, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def register(self, metric: _Metric) -> _Metric:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        return "\n".join(line for metric in self._metrics for line in metric.render()) + "\n"


class RoleMetrics:
    """The metrics every role reports. Labels: ``chain`` (and ``reason``, ``peer``)."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.registry = Registry()
        self.started = time.time()
        self._peers: dict[str, float] = {}
        self._peers_lock = threading.Lock()
        self._queue_length: Callable[[], float] = lambda: 0.0
        reg = self.registry.register
        reg(Gauge("trollmoves_info", "Role and version of this process (value 1).",
                  lambda: {_labels({"role": role, "version": _version()}): 1.0}))
        reg(Gauge("process_start_time_seconds", "Start time of the process since the Unix epoch.",
                  lambda: self.started))
        self.announced: Counter = reg(Counter(  # type: ignore[assignment]
            "trollmoves_files_announced_total", "Files announced on the bus."))
        self.requested: Counter = reg(Counter(  # type: ignore[assignment]
            "trollmoves_files_requested_total", "Files requested (push requests received or sent)."))
        self.delivered: Counter = reg(Counter(  # type: ignore[assignment]
            "trollmoves_files_delivered_total", "Files delivered to their destination."))
        self.failed: Counter = reg(Counter(  # type: ignore[assignment]
            "trollmoves_files_failed_total", "File transfers that failed."))
        self.bytes: Counter = reg(Counter(  # type: ignore[assignment]
            "trollmoves_bytes_delivered_total", "Bytes of the files delivered."))
        self.duration: Histogram = reg(Histogram(  # type: ignore[assignment]
            "trollmoves_transfer_duration_seconds", "Time to transfer one file."))
        self.refused: Counter = reg(Counter(  # type: ignore[assignment]
            "trollmoves_requests_refused_total", "Requests or connections refused, by reason."))
        self.bad_input: Counter = reg(Counter(  # type: ignore[assignment]
            "trollmoves_bad_messages_total", "Malformed or invalid messages and requests skipped."))
        reg(Gauge("trollmoves_queue_length", "Transfers waiting or running.", self._current_queue_length))
        reg(Gauge("trollmoves_peer_last_seen_age_seconds",
                  "Seconds since the last heartbeat (or, for a server, request) from each peer.", self._peer_ages))

    def _current_queue_length(self) -> float:
        return self._queue_length()

    def set_queue_length(self, function: Callable[[], float]) -> None:
        self._queue_length = function

    def peer_seen(self, peer: str) -> None:
        """Note a heartbeat (or a request) from ``peer`` now."""
        with self._peers_lock:
            self._peers.pop(peer, None)
            self._peers[peer] = time.monotonic()
            while len(self._peers) > MAX_PEERS:
                self._peers.pop(next(iter(self._peers)))

    def _peer_ages(self) -> dict[Labels, float]:
        now = time.monotonic()
        with self._peers_lock:
            return {_labels({"peer": peer}): round(now - seen, 3) for peer, seen in self._peers.items()}

    def render(self) -> str:
        return self.registry.render()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("trollmoves-roles")
    except PackageNotFoundError:
        return "unknown"


class MetricsServer:
    """Serve ``render()`` at ``/metrics`` on ``http://<bind>:<port>`` from a daemon thread.

    ``port=0`` picks a free port (read :attr:`port`). Raises OSError when the port cannot be bound.
    """

    def __init__(self, render: Callable[[], str], port: int, bind: str = "127.0.0.1") -> None:
        handler = type("_Handler", (_Handler,), {"render": staticmethod(render)})
        self._httpd = ThreadingHTTPServer((bind, port), handler)
        self._httpd.daemon_threads = True
        self.bind = bind
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="metrics-http", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("", "0.0.0.0") else self.bind
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        self._thread.start()
        LOG.info("Serving metrics on %s", self.url)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    render: Callable[[], str]
    server_version = "trollmoves-metrics"

    def do_GET(self) -> None:
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404, "only /metrics is served")
            return
        body = self.render().encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        LOG.debug("metrics: " + format, *args)


# -- the command-line options and the endpoint of one process -------------------------------

def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-bind``, as every long-running role spells them."""
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0: any free port; "
                             "default: none); `trollmoves status CONFIG` shows them")
    parser.add_argument("--metrics-bind", default="127.0.0.1", metavar="ADDRESS",
                        help="address the metrics port binds to (default: 127.0.0.1)")


class MetricsEndpoint:
    """``metrics`` served on ``port`` (None: not served) for the process running ``config_path``.

    Binding happens here, so a port in use fails at start with a ConfigError naming it;
    :meth:`start` serves and writes the endpoint file ``trollmoves status CONFIG`` reads,
    :meth:`stop` undoes both. Without a port both do nothing.
    """

    def __init__(self, metrics: RoleMetrics, config_path: str | os.PathLike[str], port: int | None,
                 bind: str = "127.0.0.1") -> None:
        from trollmoves_core.exceptions import ConfigError

        self.metrics = metrics
        self.config_path = os.fspath(config_path)
        self.server: MetricsServer | None = None
        if port is None:
            return
        if not 0 <= port < 65536:
            raise ConfigError(f"--metrics-port: expected a port number 0-65535, got {port}", file="command line")
        try:
            self.server = MetricsServer(metrics.render, port, bind)
        except OSError as err:
            raise ConfigError(f"cannot serve metrics on {bind}:{port}: {err.strerror or err}",
                              file="command line") from None

    @property
    def url(self) -> str | None:
        return None if self.server is None else self.server.url

    def start(self) -> MetricsEndpoint:
        if self.server is not None:
            self.server.start()
            try:
                write_endpoint(self.config_path, self.server.url, self.metrics.role)
            except OSError as err:
                LOG.warning("trollmoves status CONFIG will not find this process: %s", err)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            remove_endpoint(self.config_path)
            self.server = None


# -- finding a running process's endpoint from its config path ---------------------------

def runtime_directory() -> Path:
    """Where endpoint files go: ``$XDG_RUNTIME_DIR/trollmoves``, else ``/tmp/trollmoves-<uid>``."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "trollmoves" if base else Path(f"/tmp/trollmoves-{os.getuid()}")


def endpoint_file(config_path: str | os.PathLike[str]) -> Path:
    """The endpoint file of the process running ``config_path`` (by its absolute path)."""
    absolute = os.path.abspath(os.fspath(config_path))
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:16]
    return runtime_directory() / f"{Path(absolute).stem}-{digest}.json"


def write_endpoint(config_path: str | os.PathLike[str], url: str, role: str) -> Path:
    """Record that this process serves metrics for ``config_path`` at ``url``."""
    path = endpoint_file(config_path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(json.dumps({"url": url, "pid": os.getpid(), "role": role,
                                "config": os.path.abspath(os.fspath(config_path))}))
    os.replace(temp, path)
    return path


def remove_endpoint(config_path: str | os.PathLike[str]) -> None:
    """Remove this process's endpoint file (only if it is still ours)."""
    path = endpoint_file(config_path)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def read_endpoint(config_path: str | os.PathLike[str]) -> dict[str, object] | None:
    try:
        data = json.loads(endpoint_file(config_path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
