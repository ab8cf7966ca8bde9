"""The Grafana dashboard in examples/ asks only for metrics a real role exports.

A real ``trollmoves server`` with ``--metrics-port`` serves one push that lands, one that fails,
one it refuses and one request that does not decode; every metric name and every grouping
label the dashboard's queries name must then be in its /metrics output.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from posttroll.message import Message
from prometheus_client.parser import text_string_to_metric_families
from support.bus import free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.metrics import counter, metrics
from support.reqrep import request
from support.server import TOPIC, server_section
from trollmoves_roles.observe.metrics import read_endpoint

pytestmark = pytest.mark.timeout(120)

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "trollmoves-dashboard.json"
FUNCTIONS = {"rate", "irate", "increase", "sum", "max", "min", "avg", "count", "histogram_quantile",
             "label_values", "topk", "clamp_min", "time"}
"""PromQL (and Grafana template) functions the dashboard may call; any other word before '(' is a typo."""
TARGET_LABELS = {"job", "instance", "le"}
"""Labels Prometheus adds to every scraped series (``le``: each histogram bucket's)."""


def queries(node: Any) -> list[str]:
    """Every PromQL text in the dashboard: panel targets' ``expr``, template variables' queries."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key in ("expr", "definition") or (key == "query" and node.get("type") != "datasource")
            if promql and isinstance(value, str):
                found.append(value)
            else:
                found += queries(value)
    elif isinstance(node, list):
        for item in node:
            found += queries(item)
    return found


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """``(metric names, grouping labels)`` of one query; an unknown function fails the test."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)          # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)         # range selectors ([$__rate_interval], [1h])
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)
    for label in re.findall(r"label_values\([^,()]*,\s*(\w+)\s*\)", text):
        labels.add(label)
    text = re.sub(r"(label_values\([^,()]*),\s*\w+\s*\)", r"\1)", text)
    metric_names = set()
    for word, call in re.findall(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        if call:
            assert word in FUNCTIONS, f"{expr!r}: unknown function {word!r}"
        elif word not in ("bool", "offset", "and", "or", "unless"):
            metric_names.add(word)
    return metric_names, labels


def test_the_query_reader_finds_names_labels_and_typos() -> None:
    expr = ('histogram_quantile(0.9, sum by (le, chain) (rate(trollmoves_transfer_duration_seconds_bucket'
            '{job=~"$job", chain!="a b"}[$__rate_interval])))')
    assert names_in(expr) == ({"trollmoves_transfer_duration_seconds_bucket"}, {"le", "chain"})
    assert names_in('label_values(trollmoves_info{job=~"$job"}, instance)') == ({"trollmoves_info"}, {"instance"})
    with pytest.raises(AssertionError, match="unknown function 'rat'"):
        names_in("rat(trollmoves_files_failed_total[5m])")


@pytest.fixture
def exported(tmp_path: Path, dirs, server_process, runtime_dir) -> tuple[set[str], set[str]]:
    """(sample names, label names) of a real server's /metrics after a little of everything."""
    origin, out = dirs
    port = free_port()
    config = write_ini(tmp_path / "server.ini", {"chain": server_section(origin, port)})
    server_process(config, "--disable-backlog", "--metrics-port", "0")
    url = read_endpoint(config)["url"]
    path = write_file(origin, "a.dat", b"d" * 4096)
    assert wait_until(lambda: counter(metrics(url), "trollmoves_files_announced_total") == 1, timeout=10)
    address = f"127.0.0.1:{port}"
    assert request(address, Message(TOPIC, "push", {"uri": str(path), "uid": "a.dat",
                                                    "destination": f"file://{out}/"})).type == "file"
    (out / "blocker").write_text("a file where a directory is wanted")
    assert request(address, Message(TOPIC, "push", {"uri": str(path), "uid": "a.dat",
                                                    "destination": f"file://{out}/blocker/sub/"})).type == "err"
    request(address, Message(TOPIC, "push", {"uri": "/etc/passwd", "destination": f"file://{out}/"}))
    request(address, b"garbage")
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return {s.name for s in samples}, {label for s in samples for label in s.labels}


def test_every_metric_and_label_the_dashboard_names_is_exported(exported: tuple[set[str], set[str]]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = queries(dashboard)
    assert len(exprs) >= 10
    used_names: set[str] = set()
    used_labels: set[str] = set()
    for expr in exprs:
        metric_names, labels = names_in(expr)
        used_names |= metric_names
        used_labels |= labels
        used_labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", expr))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            used_labels |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
    sample_names, labels = exported
    assert used_names <= sample_names, f"not exported: {sorted(used_names - sample_names)}"
    assert used_labels <= labels | TARGET_LABELS, f"no such label: {sorted(used_labels - labels - TARGET_LABELS)}"
    # the panels operators asked for: files and bytes per chain, failures, queue, durations, peers
    assert {"trollmoves_files_delivered_total", "trollmoves_bytes_delivered_total", "trollmoves_files_failed_total",
            "trollmoves_queue_length", "trollmoves_transfer_duration_seconds_bucket",
            "trollmoves_peer_last_seen_age_seconds"} <= used_names
    assert {"chain", "peer"} <= used_labels


def test_every_panel_queries_the_dashboards_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])
