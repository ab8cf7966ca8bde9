"""The mover benchmark's report: tables, targets met or not, machine facts, the markdown file."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.cli import NETNS_ENV
from benchmarks.movers.measure import Reuse, Row, Settings
from benchmarks.report import interfaces

REPO = Path(__file__).resolve().parents[2]


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for the tables, or "-" when there is none."""
    return "-" if value is None else f"{value:,.{digits}f}"


def rows_table(rows: list[Row]) -> str:
    lines = ["| protocol | case | ours | reference | ref | ours/ref | client CPU s/GiB ours / ref | notes |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        cpu = f"{fmt(r.ours_cpu, 2)} / {fmt(r.ref_cpu, 2)}" if r.unit == "MB/s" else ""
        lines.append(f"| {r.protocol} | {r.case} | {fmt(r.ours)} {r.unit} | {r.reference} | {fmt(r.ref)} {r.unit} "
                     f"| {fmt(r.ratio, 2)} | {cpu} | {r.note.strip()} |")
    return "\n".join(lines)


def reuse_table(reuses: list[Reuse]) -> str:
    lines = ["| protocol | reused connection | connection per file | reused/per-file | logins (reused / per-file) "
             "| notes |", "|---|---:|---:|---:|---|---|"]
    for r in reuses:
        logins = (f"{fmt(r.reused_logins, 0)} for {r.reused_files} / "
                  f"{fmt(r.per_file_logins, 0)} for {r.per_file_files}")
        lines.append(f"| {r.protocol} | {fmt(r.reused)} files/s | {fmt(r.per_file)} files/s | {fmt(r.ratio, 1)}x "
                     f"| {logins} | {r.note.strip()} |")
    return "\n".join(lines)


def targets(rows: list[Row], reuses: list[Reuse]) -> list[tuple[str, str, str]]:
    out = []

    def find(protocol: str) -> Row | None:
        return next((r for r in rows if r.protocol == protocol and r.case.startswith("put") and r.unit == "MB/s"),
                    None)

    for protocol, reference, goal in (("sftp", "OpenSSH scp CLI", 0.9), ("file", "cp", 0.95)):
        row = find(protocol)
        if row:
            ratio = row.ratio
            verdict = "-" if ratio is None else ("met" if ratio >= goal else "NOT met")
            out.append((f"{protocol} mover ≥ {goal}x {reference} ({row.case})", f"{fmt(ratio, 2)}x", verdict))
    for r in reuses:
        if r.protocol == "file":
            continue
        verdict = "-" if r.ratio is None else ("met" if r.ratio >= 10 else "NOT met")
        out.append((f"{r.protocol}: reused connection ≥ 10x connection per file", f"{fmt(r.ratio, 1)}x", verdict))
    return out


def machine_facts(work: Path, area: Path, load_at_start: float) -> list[str]:
    cpu = "?"
    memory = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f}"

    def first_line(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return "not installed"
        return ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]

    def fs_type(path: Path) -> str:
        return first_line(["stat", "-f", "-c", "%T", str(path)])

    versions = []
    for dist in ("paramiko", "pyftpdlib", "pyOpenSSL", "moto", "boto3", "s3fs", "requests", "urllib3"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} missing")
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores, {memory} GiB RAM, Linux {platform.release()} ({platform.machine()})",
        f"- Network: {'private namespace, ' if NETNS_ENV in os.environ or interfaces() == ['lo'] else ''}"
        f"interfaces {', '.join(interfaces())}; every server on 127.0.0.1",
        f"- Sources on {work} ({fs_type(work)}, in the page cache); server side and downloads on {area.parent} "
        f"({fs_type(area)})",
        f"- Python {platform.python_version()}; {', '.join(versions)}",
        f"- Tools: {first_line(['ssh', '-V'])}; {' '.join(first_line(['curl', '--version']).split()[:2])}; "
        f"{first_line(['cp', '--version'])}; {first_line(['/usr/sbin/nginx', '-v'])}",
        f"- Load average (1 min): {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
        f"(other work on the machine shares its {os.cpu_count()} cores)",
        f"- Our commit: {commit}",
    ]


def markdown(command: str, *, started: str, mode: str, duration: float, settings: Settings, facts: list[str],
             rows: list[Row], reuses: list[Reuse]) -> str:
    goals = targets(rows, reuses)
    return "\n".join([
        "# Mover benchmark: our movers against the reference tools",
        "",
        f"Run `{command}` started {started} ({mode} mode, {duration:.0f} s). Produced by `benchmarks/movers/`; "
        "see its docstring for the method.",
        "",
        "## Machine", "", *facts, "",
        "## Settings", "", "```", json_line(settings), "```", "",
        "## Throughput, ours against the reference tool", "",
        "MB/s is 10^6 bytes per second. Client CPU counts this process and the tools it ran, not the server. "
        "Our movers write under a temporary name and rename (FTP: RNFR/RNTO; SFTP: posix-rename; SCP: "
        "`scp -t` then an SFTP rename; HTTP: PUT then WebDAV MOVE); the reference tools write the final name "
        "directly.", "",
        "- FTP/FTPS, many files: the reference is a plain `ftplib` STOR loop on one connection, not curl: "
        "curl 7.88 idles 1 s before most data connections after the first in passive mode (seen with "
        "`--trace-time`) and fails in active mode with TLS.",
        "- SSH: the throwaway sshd sets `SHLVL=1` for its sessions, so that bash does not source root's "
        "`~/.bashrc` (`pyenv init` here, about 0.3 s) for every `scp -t` / `scp -f` it starts; without it each "
        "SCP-mover upload, and each `scp -O` command, pays that too.",
        "- S3: moto, not the client, limits both sides (about 15 ms per request, tens of MB/s).",
        "- HTTP/HTTPS: nginx's WebDAV module (`trollmoves_http.testing`); many files: the reference is a plain "
        "requests PUT loop on one session (one request per file, ours two: PUT and MOVE).", "",
        rows_table(rows), "",
        "## Many small files: one connection against a connection per file", "",
        reuse_table(reuses), "",
        "## Targets", "",
        "| target | measured | verdict |", "|---|---|---|",
        *[f"| {name} | {measured} | {verdict} |" for name, measured, verdict in goals],
        "",
    ])


def json_line(settings: Settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(settings).items())
