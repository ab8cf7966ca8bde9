"""``trollmoves status CONFIG|URL``: show a running process's metrics as a readable table.

The target is the config file of a process started with ``--metrics-port`` (found through the
endpoint file it writes, see :mod:`trollmoves_roles.observe.metrics`), or the metrics address itself:
``http://host:port/metrics``, ``host:port`` or a bare port on 127.0.0.1.

Each chain gets a health state (:func:`chain_health`, thresholds in :class:`Thresholds`), from
the facts the process exports per chain: files pending, seconds since its last delivery, and
its deliveries and failures of the last few minutes.

Exit status: 0 shown, 1 the process does not answer, 2 bad usage (no endpoint known).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from trollmoves_core.command import Command
from trollmoves_core.plugins import PluginHost
from trollmoves_core.units import human_bytes
from trollmoves_roles.tools.columns import aligned

if TYPE_CHECKING:
    from prometheus_client.samples import Sample

COLUMNS = (("ANNOUNCED", "trollmoves_files_announced_total"), ("REQUESTED", "trollmoves_files_requested_total"),
           ("DELIVERED", "trollmoves_files_delivered_total"), ("FAILED", "trollmoves_files_failed_total"))


OK, LAGGING, STALLED, FAILING = "ok", "lagging", "stalled", "failing"


@dataclass(frozen=True)
class Thresholds:
    """When a chain is no longer ``ok`` (``docs/tools.md``)."""

    lagging_after: float = 60.0
    """Seconds without a delivery, with files pending: lagging."""
    stalled_after: float = 300.0
    """Seconds without a delivery, with files pending: stalled."""
    failing_ratio: float = 0.5
    """Share of failures among the recent outcomes (deliveries + failures) from which a chain is failing."""
    min_failures: int = 1
    """Recent failures needed before the ratio counts."""


def chain_health(pending: float, progress_age: float | None, delivered: float, failed: float,
                 thresholds: Thresholds = Thresholds()) -> tuple[str, str]:
    """The state of one chain and why: ``failing`` (recent failures at or above the ratio) wins
    over ``stalled`` and ``lagging`` (files pending and no delivery for that long), else ``ok``."""
    outcomes = delivered + failed
    if failed >= thresholds.min_failures and outcomes and failed / outcomes >= thresholds.failing_ratio:
        return FAILING, f"{int(failed)} of {int(outcomes)} recent transfers failed"
    if pending > 0 and progress_age is not None:
        for state, limit in ((STALLED, thresholds.stalled_after), (LAGGING, thresholds.lagging_after)):
            if progress_age >= limit:
                return state, f"{int(pending)} pending, no delivery for {progress_age:.0f} s"
    return OK, f"{int(pending)} pending" if pending else ""


def parse_exposition(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition; ValueError if ``text`` is not one."""
    from prometheus_client.parser import text_string_to_metric_families

    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def metrics_url(target: str) -> str:
    """The metrics URL for ``target`` (a config path, URL, ``host:port`` or port); ValueError if unknown."""
    from trollmoves_roles.observe.metrics import endpoint_file, read_endpoint

    if target.startswith(("http://", "https://")):
        return target if urllib.parse.urlsplit(target).path not in ("", "/") else target.rstrip("/") + "/metrics"
    if target.isdigit():
        return f"http://127.0.0.1:{target}/metrics"
    if os.path.exists(target):
        endpoint = read_endpoint(target)
        if endpoint is None or not isinstance(endpoint.get("url"), str):
            raise ValueError(f"{target}: no running process with metrics found (start it with --metrics-port; "
                             f"looked for {endpoint_file(target)})")
        return str(endpoint["url"])
    host, sep, port = target.rpartition(":")
    if sep and host and port.isdigit():
        return f"http://{target}/metrics"
    raise ValueError(f"{target}: not a config file, URL, host:port or port")


def fetch(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8", errors="replace")


def render_table(samples: list[Sample], url: str, thresholds: Thresholds = Thresholds()) -> str:
    """The readable form of a role's metrics."""
    by_name: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_name[sample.name].append(sample)
    lines = []
    info = by_name.get("trollmoves_info")
    role = info[0].labels.get("role", "?") if info else "?"
    started = by_name.get("process_start_time_seconds")
    uptime = ""
    if started:
        seconds = max(0, int(dt.datetime.now(dt.UTC).timestamp() - started[0].value))
        uptime = f"  up {dt.timedelta(seconds=seconds)}"
    lines.append(f"{role}{uptime}  {url}")
    lines.append("")

    chains = sorted({s.labels.get("chain", "") for _, name in [*COLUMNS, ("", "trollmoves_bytes_delivered_total")]
                     for s in by_name.get(name, [])})

    def total(name: str, chain: str) -> float:
        return sum(s.value for s in by_name.get(name, []) if s.labels.get("chain", "") == chain)

    health = health_by_chain(by_name, thresholds)
    chains = sorted(set(chains) | set(health))
    header = ("CHAIN", *(title for title, _ in COLUMNS), "BYTES", "MEAN TRANSFER", "HEALTH", "")
    rows = [header]
    for chain in chains or [""]:
        count = total("trollmoves_transfer_duration_seconds_count", chain)
        mean = total("trollmoves_transfer_duration_seconds_sum", chain) / count if count else None
        state, reason = health.get(chain, ("-", ""))
        rows.append((chain or "-", *(str(int(total(name, chain))) for _, name in COLUMNS),
                     human_bytes(total("trollmoves_bytes_delivered_total", chain)),
                     "-" if mean is None else f"{mean:.3f} s", state, reason))
    lines += aligned(rows)
    lines.append("")
    queue = sum(s.value for s in by_name.get("trollmoves_queue_length", []))
    lines.append(f"queue length: {int(queue)}")
    refused = _by_label(by_name.get("trollmoves_requests_refused_total", []), "reason")
    lines.append("refused: " + (", ".join(f"{k} {v}" for k, v in refused.items()) if refused else "none"))
    bad = sum(s.value for s in by_name.get("trollmoves_bad_messages_total", []))
    lines.append(f"bad messages skipped: {int(bad)}")
    peers = sorted(by_name.get("trollmoves_peer_last_seen_age_seconds", []), key=lambda s: s.value)
    if peers:
        lines.append("")
        lines += aligned([("PEER", "LAST SEEN"), *((s.labels.get("peer", "?"), f"{s.value:.1f} s ago")
                                                     for s in peers)])
    return "\n".join(lines)


def health_by_chain(by_name: dict[str, list[Sample]], thresholds: Thresholds = Thresholds()) \
        -> dict[str, tuple[str, str]]:
    """``{chain: (state, reason)}`` for the chains whose process exports the health facts."""
    def values(name: str) -> dict[str, float]:
        return {s.labels.get("chain", ""): s.value for s in by_name.get(name, [])}

    pending, ages = values("trollmoves_chain_pending"), values("trollmoves_chain_progress_age_seconds")
    delivered, failed = values("trollmoves_chain_recent_delivered"), values("trollmoves_chain_recent_failed")
    return {chain: chain_health(pending.get(chain, 0.0), ages.get(chain), delivered.get(chain, 0.0),
                                failed.get(chain, 0.0), thresholds)
            for chain in sorted(set(pending) | set(ages) | set(failed))}


def _by_label(samples: list[Sample], label: str) -> dict[str, int]:
    found: dict[str, int] = defaultdict(int)
    for sample in samples:
        found[sample.labels.get(label, "?")] += int(sample.value)
    return dict(sorted(found.items()))


class StatusTool(Command):
    """``trollmoves status CONFIG|URL``: a one-shot query."""

    NAME: ClassVar[str] = "status"
    HELP: ClassVar[str] = "show the metrics of a running trollmoves process as a table"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.description = (cls.HELP + ". TARGET is the config file of a process started with --metrics-port, "
                              "or its metrics address (http://host:port/metrics, host:port, or a port on "
                              "127.0.0.1). Exit 0 shown, 1 no answer, 2 no endpoint known.")
        parser.add_argument("target", metavar="TARGET", help="config file, URL, host:port or port")
        parser.add_argument("--raw", action="store_true", help="print the Prometheus text as received")
        parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                            help="how long to wait for the answer (default 5)")
        default = Thresholds()
        parser.add_argument("--lagging-after", type=float, default=default.lagging_after, metavar="SECONDS",
                            help="a chain with files pending and no delivery for this long is lagging "
                                 f"(default {default.lagging_after:g})")
        parser.add_argument("--stalled-after", type=float, default=default.stalled_after, metavar="SECONDS",
                            help=f"... and stalled after this long (default {default.stalled_after:g})")
        parser.add_argument("--failing-ratio", type=float, default=default.failing_ratio, metavar="RATIO",
                            help="a chain whose recent transfers failed at least this often (0-1) is failing "
                                 f"(default {default.failing_ratio:g})")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        if not 0 < args.failing_ratio <= 1 or args.lagging_after < 0 or args.stalled_after < 0:
            print("trollmoves status: --failing-ratio must be in (0, 1], --lagging-after and --stalled-after "  # noqa: T201
                  "not negative", file=sys.stderr)
            return 2
        thresholds = Thresholds(args.lagging_after, args.stalled_after, args.failing_ratio)
        try:
            url = metrics_url(args.target)
        except ValueError as err:
            print(f"trollmoves status: {err}", file=sys.stderr)  # noqa: T201 - the command's one error line
            return 2
        try:
            text = fetch(url, args.timeout)
        except (OSError, urllib.error.URLError) as err:
            print(f"trollmoves status: {url} does not answer: {getattr(err, 'reason', err)}",  # noqa: T201
                  file=sys.stderr)
            return 1
        if not args.raw:
            try:
                text = render_table(parse_exposition(text), url, thresholds)
            except ValueError as err:
                print(f"trollmoves status: {url} does not answer with Prometheus metrics: {err}",  # noqa: T201
                      file=sys.stderr)
                return 1
        print(text)  # noqa: T201 - the output
        return 0
