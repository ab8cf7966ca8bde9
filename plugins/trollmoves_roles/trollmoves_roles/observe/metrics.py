"""Prometheus metrics for the roles, kept and rendered by ``prometheus_client``.

:class:`RoleMetrics` holds the metrics every role reports (see ``docs/observability.md``) in a
registry of its own, with prometheus_client's process (memory, CPU, file descriptors, start
time) and platform collectors, and the broker connections of :data:`BUS_CONNECTIONS`;
:class:`MetricsServer` serves a registry at
``http://<bind>:<port>/metrics`` from a daemon thread, bound to 127.0.0.1 unless told otherwise.
A process serving metrics also writes an endpoint file (:func:`write_endpoint`) so that
``trollmoves status CONFIG`` finds it from the config path alone.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
from prometheus_client import CollectorRegistry, Info, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LOG = logging.getLogger(__name__)

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_PEERS = 1000
"""Peers tracked for ``last seen``; the longest silent is forgotten first."""
HEALTH_WINDOW = 300.0
"""Seconds over which each chain's recent deliveries and failures are counted (``trollmoves status`` health)."""

# The `_created` series (one more per counter and histogram label set) have no reader here.
prometheus_client.disable_created_metrics()


class _Labelled:
    """A prometheus_client metric called with its labels as keywords; a label not given is
    empty, which Prometheus reads as absent."""

    def __init__(self, name: str, metric: Any, labelnames: Sequence[str]) -> None:
        self.name = name
        self._metric = metric
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        self._given: dict[tuple[tuple[str, object], ...], Any] = {}
        """Children by the labels as given (``chain=...``): one dict look-up per update."""

    def _child(self, labels: Mapping[str, object]) -> Any:
        given = tuple(labels.items())
        try:
            return self._given[given]
        except KeyError:
            pass
        except TypeError:  # an unhashable label value: found by its string below
            given = None
        if not labels.keys() <= set(self._labelnames):
            raise ValueError(f"{self.name}: unknown labels {sorted(labels)}")
        key = tuple(str(labels.get(name, "")) for name in self._labelnames)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*key) if key else self._metric
        if given is not None:
            self._given[given] = child
        return child

    def _sample(self, suffix: str, labels: Mapping[str, object]) -> float:
        wanted = {name: str(labels.get(name, "")) for name in self._labelnames}
        for family in self._metric.collect():
            for sample in family.samples:
                if sample.name == family.name + suffix and sample.labels == wanted:
                    return float(sample.value)
        return 0.0


class Counter(_Labelled):
    """A counter per label set."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        super().__init__(name, prometheus_client.Counter(name, help_text, labelnames, registry=registry), labelnames)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        self._child(labels).inc(amount)

    def value(self, **labels: object) -> float:
        return self._sample("_total", labels)


class _Window:
    """Amounts added in the last ``seconds`` (monotonic clock), summed per whole second: at most
    ``seconds + 2`` buckets however many files a burst delivers (a tuple per file, kept for the
    window, grew a process by about 50 bytes per file delivered in it); an amount leaves up to
    a second late."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._starts: deque[int] = deque()
        self._amounts: deque[float] = deque()
        self._total = 0.0

    def add(self, amount: float, now: float) -> None:
        second = int(now)
        if self._starts and self._starts[-1] == second:
            self._amounts[-1] += amount
        else:
            self._starts.append(second)
            self._amounts.append(amount)
        self._total += amount
        self._trim(now)

    def total(self, now: float) -> float:
        self._trim(now)
        return self._total

    def _trim(self, now: float) -> None:
        while self._starts and self._starts[0] + 1 < now - self.seconds:
            self._starts.popleft()
            self._total -= self._amounts.popleft()


class _Outcomes(Counter):
    """A counter that also tells ``on_inc(chain, amount)`` (for the recent-outcome windows)."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], registry: CollectorRegistry,
                 on_inc: Callable[[str, float], None]) -> None:
        super().__init__(name, help_text, labelnames, registry)
        self._on_inc = on_inc

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        super().inc(amount, **labels)
        self._on_inc(str(labels.get("chain", "")), amount)


class Histogram(_Labelled):
    """Observations in cumulative ``le`` buckets, with their sum and count, per label set."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], registry: CollectorRegistry,
                 buckets: Iterable[float] = DURATION_BUCKETS) -> None:
        super().__init__(name, prometheus_client.Histogram(name, help_text, labelnames, registry=registry,
                                                           buckets=tuple(buckets)), labelnames)

    def observe(self, value: float, **labels: object) -> None:
        self._child(labels).observe(value)

    def count(self, **labels: object) -> int:
        return int(self._sample("_count", labels))


class BusConnections:
    """The state of this process's connections to a message broker, as a brokered transport
    reports it (ZeroMQ has no connection to report); every :class:`RoleMetrics` shows it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._up: dict[tuple[str, str], bool] = {}
        self._reconnects: dict[str, int] = {}

    def set(self, bus: str, connection: str, up: bool) -> None:
        """``connection`` (what it is for: ``subscriber``, ``requester``...) to ``bus`` is up or down."""
        with self._lock:
            self._up[(bus, connection)] = up
            self._reconnects.setdefault(bus, 0)

    def reconnected(self, bus: str) -> None:
        """This process got ``bus`` back after losing it."""
        with self._lock:
            self._reconnects[bus] = self._reconnects.get(bus, 0) + 1

    def drop(self, bus: str, connection: str) -> None:
        """``connection`` was closed on purpose: it is no longer reported."""
        with self._lock:
            self._up.pop((bus, connection), None)

    def families(self) -> Iterator[Metric]:
        with self._lock:
            up, reconnects = dict(self._up), dict(self._reconnects)
        if not reconnects:
            return
        connected = GaugeMetricFamily("trollmoves_bus_connected",
                                      "1 while every connection to the broker is up, else 0.", labels=["bus"])
        buses: dict[str, bool] = {}
        for (bus, _), state in up.items():
            buses[bus] = buses.get(bus, True) and state
        for bus, state in buses.items():
            connected.add_metric([bus], 1.0 if state else 0.0)
        yield connected
        counted = CounterMetricFamily("trollmoves_bus_reconnects", "Times the broker came back after being lost.",
                                      labels=["bus"])
        for bus, count in reconnects.items():
            counted.add_metric([bus], count)
        yield counted


BUS_CONNECTIONS = BusConnections()
"""This process's broker connections (one process, one bus)."""


class RoleMetrics(Collector):
    """The metrics every role reports, in a registry of their own (:attr:`registry`).

    Labels: ``chain`` unless ``chains`` is false (the downloader has none), ``reason`` on
    refusals, ``peer`` on last-seen ages. As a collector it yields the gauges read at each
    scrape (queue length, peer ages) and, per chain, the facts its health is judged by: work
    pending (:meth:`set_pending`), seconds since it last made progress (a delivery, or
    :meth:`progressed`) and its deliveries and failures in the last :data:`HEALTH_WINDOW` seconds.
    """

    def __init__(self, role: str, *, chains: bool = True) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        self._peers: dict[str, float] = {}
        self._peers_lock = threading.Lock()
        self._queue_length: Callable[[], float] = lambda: 0.0
        self._health_lock = threading.Lock()
        self._pending: dict[str, Callable[[], float]] = {}
        self._progress: dict[str, float] = {}
        self._recent: dict[tuple[str, str], _Window] = {}
        chain = ("chain",) if chains else ()
        registry = self.registry
        Info("trollmoves", "Role and version of this process (value 1).",
             registry=registry).info({"role": role, "version": _version()})
        self.announced = Counter("trollmoves_files_announced_total", "Files announced on the bus.", chain, registry)
        self.requested = Counter("trollmoves_files_requested_total",
                                 "Files requested (push requests received or sent).", chain, registry)
        self.delivered = _Outcomes("trollmoves_files_delivered_total", "Files delivered to their destination.",
                                   chain, registry, lambda c, n: self._outcome("delivered", c, n))
        self.failed = _Outcomes("trollmoves_files_failed_total", "File transfers that failed.", chain, registry,
                                lambda c, n: self._outcome("failed", c, n))
        self.bytes = Counter("trollmoves_bytes_delivered_total", "Bytes of the files delivered.", chain, registry)
        self.duration = Histogram("trollmoves_transfer_duration_seconds", "Time to transfer one file.", chain,
                                  registry)
        self.refused = Counter("trollmoves_requests_refused_total", "Requests or connections refused, by reason.",
                               (*chain, "reason"), registry)
        self.bad_input = Counter("trollmoves_bad_messages_total",
                                 "Malformed or invalid messages and requests skipped.", chain, registry)
        registry.register(self)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily("trollmoves_queue_length", "Transfers waiting or running.")
        try:
            queue.add_metric([], float(self._queue_length()))
        except Exception as err:  # a scrape must not fail because one gauge did
            LOG.debug("Queue length failed: %s", err)
        yield queue
        ages = GaugeMetricFamily("trollmoves_peer_last_seen_age_seconds",
                                 "Seconds since the last heartbeat (or, for a server, request) from each peer.",
                                 labels=["peer"])
        now = time.monotonic()
        with self._peers_lock:
            seen = list(self._peers.items())
        for peer, when in seen:
            ages.add_metric([peer], round(now - when, 3))
        yield ages
        yield from self._health_families(now)
        yield from BUS_CONNECTIONS.families()

    # -- the facts of each chain's health ---------------------------------------------------

    def set_pending(self, chain: str, function: Callable[[], float]) -> None:
        """``function()`` gives the files ``chain`` has yet to settle (its progress clock starts now)."""
        with self._health_lock:
            self._pending[chain] = function
            self._progress.setdefault(chain, time.monotonic())

    def drop_pending(self, chain: str) -> None:
        """``chain`` is gone (removed at a reload): report no pending work and no progress age for it."""
        with self._health_lock:
            self._pending.pop(chain, None)
            self._progress.pop(chain, None)

    def progressed(self, chain: str) -> None:
        """``chain`` settled a file without delivering it itself (another client did)."""
        with self._health_lock:
            self._progress[chain] = time.monotonic()

    def _outcome(self, kind: str, chain: str, amount: float) -> None:
        now = time.monotonic()
        with self._health_lock:
            window = self._recent.get((kind, chain))
            if window is None:
                window = self._recent[(kind, chain)] = _Window(HEALTH_WINDOW)
            window.add(amount, now)
            self._progress.setdefault(chain, now)
            if kind == "delivered":
                self._progress[chain] = now

    def _health_families(self, now: float) -> Iterator[Metric]:
        pending = GaugeMetricFamily("trollmoves_chain_pending", "Files the chain has yet to settle.",
                                    labels=["chain"])
        age = GaugeMetricFamily("trollmoves_chain_progress_age_seconds",
                                "Seconds since the chain last delivered a file (or started, if it never did).",
                                labels=["chain"])
        recent = {kind: GaugeMetricFamily(f"trollmoves_chain_recent_{kind}",
                                          f"Files {kind} in the last {HEALTH_WINDOW:g} s.", labels=["chain"])
                  for kind in ("delivered", "failed")}
        with self._health_lock:
            functions = list(self._pending.items())
            ages = [(chain, now - when) for chain, when in self._progress.items()]
            totals = [(kind, chain, window.total(now)) for (kind, chain), window in self._recent.items()]
        for chain, function in functions:
            try:
                pending.add_metric([chain], float(function()))
            except Exception as err:  # a scrape must not fail because one gauge did
                LOG.debug("Pending of %s failed: %s", chain, err)
        for chain, seconds in ages:
            age.add_metric([chain], round(seconds, 3))
        for kind, chain, total in totals:
            recent[kind].add_metric([chain], total)
        yield pending
        yield age
        yield from recent.values()

    def set_queue_length(self, function: Callable[[], float]) -> None:
        self._queue_length = function

    def peer_seen(self, peer: str) -> None:
        """Note a heartbeat (or a request) from ``peer`` now."""
        with self._peers_lock:
            self._peers.pop(peer, None)
            self._peers[peer] = time.monotonic()
            while len(self._peers) > MAX_PEERS:
                self._peers.pop(next(iter(self._peers)))

    def render(self) -> str:
        """The Prometheus text exposition of :attr:`registry`."""
        return prometheus_client.generate_latest(self.registry).decode()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("trollmoves-roles")
    except PackageNotFoundError:
        return "unknown"


class MetricsServer:
    """Serve ``registry`` at ``/metrics`` (and ``/``) on ``http://<bind>:<port>`` from a daemon
    thread, with prometheus_client's content negotiation; other paths get 404.

    ``port=0`` picks a free port (read :attr:`port`). Raises OSError when the port cannot be bound.
    """

    def __init__(self, registry: Collector, port: int, bind: str = "127.0.0.1") -> None:
        self._httpd = make_server(bind, port, _metrics_only(prometheus_client.make_wsgi_app(registry)),
                                  _ThreadingServer, _QuietHandler)
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


def _metrics_only(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in ("/metrics", "/"):
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"only /metrics is served\n"]
    return serve


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
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
            self.server = MetricsServer(metrics.registry, port, bind)
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
