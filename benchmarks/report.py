"""Tables, targets, machine facts, and the JSON + markdown results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
from pathlib import Path

from benchmarks import plots
from benchmarks.impls import IMPLEMENTATIONS, REPO, package_versions

RESULTS = Path(__file__).resolve().parent / "results"

COLUMNS: dict[str, list[tuple[str, str]]] = {
    # scenario: (result key, column title)
    "latency": [("files", "files"), ("lost", "lost"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
                ("p99_ms", "p99 ms"), ("max_ms", "max ms")],
    "burst": [("files", "files"), ("lost", "lost"), ("dup", "dup"), ("elapsed_s", "time s"),
              ("files_per_s", "files/s"), ("server_cpu_s", "server CPU s"), ("client_cpu_s", "client CPU s"),
              ("dest_missing", "dest missing"), ("dest_extra", "dest extra")],
    "big": [("size_mib", "MiB"), ("repeats", "runs"), ("elapsed_s", "best s"), ("median_s", "median s"),
            ("mib_per_s", "best MiB/s"), ("cp_s", "cp best s"), ("cp_median_s", "cp median s"),
            ("vs_cp", "speed vs cp (best)"), ("hash_s", "1 hash s"), ("limit_s", "limit s"),
            ("vs_limit", "speed vs limit (best)"), ("hardlinked", "hardlinked"), ("dest_wrong_size", "bad size")],
    "sftp": [("size_mib", "MiB"), ("repeats", "runs"), ("elapsed_s", "best s"), ("median_s", "median s"),
             ("mib_per_s", "best MiB/s"), ("cp_s", "scp best s"), ("cp_median_s", "scp median s"),
             ("vs_cp", "speed vs scp (best)"), ("dest_wrong_size", "bad size")],
    "mqtt_latency": [("files", "files"), ("lost", "lost"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
                     ("p99_ms", "p99 ms"), ("max_ms", "max ms")],
    "mqtt_burst": [("files", "files"), ("lost", "lost"), ("dup", "dup"), ("dest_missing", "dest missing"),
                   ("time_s", "time s"), ("files_per_s", "files/s"), ("vs_zeromq", "vs ZeroMQ"),
                   ("server_cpu_ms_per_file", "server CPU ms/file"),
                   ("client_cpu_ms_per_file", "client CPU ms/file (each)"),
                   ("clients_cpu_ms_per_file", "clients CPU ms/file"),
                   ("broker_cpu_ms_per_file", "broker CPU ms/file")],
    "fanin": [("servers", "servers"), ("files", "files"), ("lost", "lost"), ("dup", "dup"),
              ("elapsed_s", "time s"), ("files_per_s", "files/s"), ("dest_missing", "dest missing")],
    "resources": [("rounds", "rounds"), ("server_rss_start_mib", "srv RSS start MiB"),
                  ("server_rss_end_mib", "srv RSS end MiB"), ("server_rss_growth", "srv growth"),
                  ("client_rss_start_mib", "cli RSS start MiB"), ("client_rss_end_mib", "cli RSS end MiB"),
                  ("client_rss_growth", "cli growth"),
                  ("server_rss_growth_after_round1", "srv growth after round 1"),
                  ("client_rss_growth_after_round1", "cli growth after round 1"),
                  ("server_idle_cpu_pct", "srv idle CPU %"),
                  ("client_idle_cpu_pct", "cli idle CPU %")],
    "wan": [("files", "files"), ("rtt_ms", "RTT ms"), ("link_mib_s", "link MiB/s"),
            ("file_files_per_s", "file files/s"), ("file_lost", "file lost"), ("file_dup", "file dup"),
            ("sftp_files_per_s", "sftp files/s"), ("sftp_link_share", "sftp share of link"),
            ("sftp_logins", "sftp logins"), ("sftp_lost", "sftp lost"), ("sftp_dup", "sftp dup")],
}
NO_RATIO = {"rtt_ms", "link_mib_s", "file_lost", "file_dup", "sftp_lost", "sftp_dup",
            "files", "servers", "size_mib", "repeats", "hardlinked", "rounds", "lost", "dup", "dest_missing",
            "dest_extra", "dest_wrong_size"}


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, list):
        return " / ".join(map(fmt, value))
    return str(value)


def rows(scenario: str, results: dict[str, dict]) -> list[list[str]]:
    """One row per implementation (or its error; one per setup of a result with ``setups``) and the
    ratios ours/upstream and ours/baseline."""
    columns = COLUMNS[scenario]
    out = []
    for name, result in results.items():
        if "error" in result:
            out.append([name, f"not run: {result['error'].splitlines()[0][:150]}"] + [""] * (len(columns) - 1))
        elif "setups" in result:
            out += [[f"{name}: {setup['setup']}"] + [fmt(setup.get(key)) for key, _ in columns]
                    for setup in result["setups"]]
        else:
            out.append([name] + [fmt(result.get(key)) for key, _ in columns])
    for reference in ("upstream", "baseline"):
        before, after = results.get(reference, {}), results.get("ours", {})
        if "setups" in before and "setups" in after:
            earlier = {setup["setup"]: setup for setup in before["setups"]}
            for setup in after["setups"]:
                ratio = _ratio(columns, earlier.get(setup["setup"], {}), setup)
                if ratio:
                    out.append([f"ours/{reference}: {setup['setup']}", *ratio])
            continue
        ratio = _ratio(columns, before, after)
        if ratio:
            out.append([f"ours/{reference}", *ratio])
    return out


def _ratio(columns: list[tuple[str, str]], reference: dict, ours: dict) -> list[str] | None:
    if not reference or not ours or "error" in reference or "error" in ours:
        return None
    ratio = []
    for key, _ in columns:
        a, b = reference.get(key), ours.get(key)
        ok = isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) and a
        ratio.append(fmt(b / a) if key not in NO_RATIO and ok else "")
    return ratio


def table(scenario: str, results: dict[str, dict]) -> str:
    head = ["impl"] + [title for _, title in COLUMNS[scenario]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(scenario, results)]
    return "\n".join(lines)


def targets(results: dict[str, dict[str, dict]]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every target whose scenario ran."""
    out: list[tuple[str, str, str]] = []

    def get(scenario: str, impl: str, key: str) -> object:
        return results.get(scenario, {}).get(impl, {}).get(key)

    def add(name: str, measured: object, ok: bool | None) -> None:
        out.append((name, fmt(measured) if not isinstance(measured, str) else measured,
                    "n/a" if ok is None else ("met" if ok else "MISSED")))

    if "latency" in results:
        up, ours = get("latency", "upstream", "p50_ms"), get("latency", "ours", "p50_ms")
        p99 = get("latency", "ours", "p99_ms")
        add("latency p50 ≤ 1/5 upstream", f"{fmt(ours)} ms vs {fmt(up)} ms",
            None if ours is None or up is None else ours <= up / 5)
        add("latency p50 ≤ 30 ms", ours, None if ours is None else ours <= 30)
        add("latency p99 ≤ 100 ms", p99, None if p99 is None else p99 <= 100)
    if "burst" in results:
        up, ours = get("burst", "upstream", "files_per_s"), get("burst", "ours", "files_per_s")
        add("burst ≥ 5x upstream files/s", f"{fmt(ours)} vs {fmt(up)}",
            None if ours is None or up is None else ours >= 5 * up)
        for key in ("lost", "dup"):
            value = get("burst", "ours", key)
            add(f"burst 0 {key}", value, None if value is None else value == 0)
    if "mqtt_latency" in results:
        p50, p99 = get("mqtt_latency", "ours", "p50_ms"), get("mqtt_latency", "ours", "p99_ms")
        add("MQTT latency p50 ≤ 5 ms", p50, None if p50 is None else p50 <= 5)
        add("(info) MQTT latency p99", p99, None)
        zeromq = [get("mqtt_latency", "ours", f"zeromq_{key}") for key in ("p50_ms", "p99_ms")]
        add("(info) the same latency over ZeroMQ, p50 / p99 ms", fmt(zeromq), None)
    if "mqtt_burst" in results:
        for key in ("lost", "dup"):
            value = get("mqtt_burst", "ours", key)
            add(f"MQTT burst 0 {key} (every setup)", value, None if value is None else value == 0)
        ratio = get("mqtt_burst", "ours", "vs_zeromq")
        one, zeromq = get("mqtt_burst", "ours", "mqtt_files_per_s"), get("mqtt_burst", "ours", "zeromq_files_per_s")
        add("MQTT burst, 1 client ≥ 50% of ZeroMQ files/s", f"{fmt(one)} vs {fmt(zeromq)} ({fmt(ratio)})",
            None if not isinstance(ratio, float) else ratio >= 0.5)
        slowest = get("mqtt_burst", "ours", "group_min_files_per_s")
        add("MQTT burst, groups of 2 and 4 ≥ 1 client files/s", f"slowest {fmt(slowest)} vs {fmt(one)}",
            None if not isinstance(slowest, float) or not isinstance(one, float) else slowest >= one)
    if "big" in results:
        value = get("big", "ours", "vs_cp")
        add("big file ≥ 0.95x cp", value, None if value is None else value >= 0.95)
        add("(info) big file vs its limit, 1 hash + max(cp, 1 hash)", get("big", "ours", "vs_limit"), None)
        add("(info) big file with checksum = none vs cp", get("big", "ours-checksum-none", "vs_cp"), None)
    if "sftp" in results:
        value = get("sftp", "ours", "vs_cp")
        add("big file over SFTP ≥ 0.9x OpenSSH scp", value, None if value is None else value >= 0.9)
    if "wan" in results:
        value = get("wan", "ours", "file_files_per_s")
        add("WAN 50 ms RTT, file destination ≥ 200 files/s", value, None if value is None else value >= 200)
        value = get("wan", "ours", "sftp_link_share")
        add("WAN 50 ms RTT, SFTP ≥ 70% of the link", value, None if value is None else value >= 0.7)
    if "resources" in results:
        for who in ("server", "client"):
            value = get("resources", "ours", f"{who}_rss_growth")
            add(f"{who} RSS growth ≤ 10%", value, None if value is None else value <= 0.10)
        for who in ("server", "client"):
            value = get("resources", "ours", f"{who}_rss_growth_after_round1")
            add(f"(info) {who} RSS growth after the first burst", value, None)
        for who in ("server", "client"):
            value = get("resources", "ours", f"{who}_idle_cpu_pct")
            add(f"{who} idle CPU ≤ 1%", value, None if value is None else value <= 1.0)
    return out


def interfaces() -> list[str]:
    """Network interfaces of this process's namespace (/sys/class/net shows the mount's, not ours)."""
    try:
        return sorted(name for _, name in socket.if_nameindex())
    except OSError:
        return []


def machine_facts() -> dict:
    facts: dict = {"cores": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        facts["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False,
                                         capture_output=True, text=True, timeout=10).stdout.strip()
    facts["netns_interfaces"] = interfaces()
    facts["packages"] = {impl.name: package_versions(impl) for impl in IMPLEMENTATIONS}
    return facts


def write(run: dict, markdown_path: Path | None) -> list[Path]:
    """Write ``results/run-<stamp>.json``, ``results/latest.json`` and, given a path, the markdown summary
    with the PNG plots beside it (skipped, with one line saying so, without matplotlib)."""
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(run, indent=2, default=str)
    json_path = RESULTS / f"run-{run['started'].replace(':', '').replace('-', '')}.json"
    json_path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    if markdown_path is None:
        return [json_path]
    figures = plots.write(run["results"], markdown_path.parent)
    if figures is None:
        print(plots.SKIPPED)
    markdown_path.write_text(markdown(run, figures))
    return [json_path, markdown_path, *(markdown_path.parent / f.filename for f in figures or [])]


def markdown(run: dict, figures: list[plots.Plot] | None) -> str:
    """The summary; ``figures`` are embedded under their scenario, None says the plots were skipped."""
    facts = run["machine"]
    lines = [
        "# Benchmark results: upstream trollmoves 0.19.0 vs ours",
        "",
        f"Run `{run['command']}` started {run['started']} ({run['mode']} mode, {run['duration_s']:.0f} s).",
        "",
        "## Machine",
        "",
        f"- CPU: {facts.get('cpu', '?')}, {facts.get('cores')} cores, {facts.get('memory_gib', '?')} GiB RAM, "
        f"Linux {facts.get('kernel')} ({facts.get('machine')})",
        f"- Network: private namespace, interfaces {', '.join(facts.get('netns_interfaces', []))}",
        f"- Our commit: {facts.get('commit', '?')}",
    ]
    for name, packages in facts.get("packages", {}).items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in packages.items()))
    lines += ["", "## Parameters", "", "```", json.dumps(run["params"], default=str), "```"]
    if figures is None:
        lines += ["", plots.SKIPPED]
    for scenario, results in run["results"].items():
        lines += ["", f"## {scenario}", "", run["descriptions"].get(scenario, ""), "", table(scenario, results)]
        for name, result in results.items():
            for note in result.get("notes", []):
                lines.append(f"\n- {name}: {note}")
        lines += [f"\n{f.markdown()}" for f in figures or [] if f.scenario == scenario]
    lines += ["", "## Targets (ours)", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {name} | {measured} | {verdict} |" for name, measured, verdict in targets(run["results"])]
    return "\n".join(lines) + "\n"
