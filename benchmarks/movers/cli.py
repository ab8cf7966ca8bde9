"""``python -m benchmarks.movers``: parse the options, run every protocol, print and write the report."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import benchmarks.movers
from benchmarks.cli import NETNS_ENV
from benchmarks.movers.measure import (
    Reuse,
    Row,
    Settings,
    big_get,
    big_put,
    make_files,
    server_area,
    small_files,
    warm_up,
)
from benchmarks.movers.report import fmt, machine_facts, markdown, reuse_table, rows_table, targets
from benchmarks.movers.targets import PROTOCOLS, make_target, unavailable
from benchmarks.report import interfaces
from trollmoves_core.plugins import default_host

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.movers", description=benchmarks.movers.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 MiB big file, 200 small files, 60 s case limit")
    parser.add_argument("--protocol", nargs="+", action="extend", choices=PROTOCOLS, metavar="PROTOCOL",
                        help=f"measure only these ({', '.join(PROTOCOLS)}); default all")
    parser.add_argument("--big-mib", type=int, help="big file size in MiB (default 1024, quick 100)")
    parser.add_argument("--repeat", type=int, help="runs per big-file case, median (default 3)")
    parser.add_argument("--small-count", type=int, help="number of 1 KiB files (default 1000, quick 200)")
    parser.add_argument("--per-file-count", type=int,
                        help="files sent with a new connection each (default 200, quick 50)")
    parser.add_argument("--case-timeout", type=float, help="seconds per case (default 300, quick 60)")
    parser.add_argument("--small-time-limit", type=float,
                        help="seconds per small-file round of our movers (default 30, quick 5)")
    parser.add_argument("--direction", choices=("put", "get"), help="big file: only uploads or only downloads")
    parser.add_argument("--workdir", type=Path, help="scratch directory for the source files (default: a temp dir)")
    parser.add_argument("--markdown", type=Path,
                        help="write the markdown summary here (default: results/movers.md, for runs of every protocol)")
    parser.add_argument("--no-netns", action="store_true", help="do not re-run inside a private network namespace")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.no_netns and not os.environ.get(NETNS_ENV) and any(n != "lo" for n in interfaces()):
        os.environ[NETNS_ENV] = "1"
        script = str(REPO / "scripts" / "in-netns")
        os.execv(script, [script, sys.executable, "-m", "benchmarks.movers", *sys.argv[1:]])
    settings = Settings.quick() if args.quick else Settings()
    for field in ("big_mib", "repeat", "small_count", "per_file_count", "case_timeout", "small_time_limit"):
        if getattr(args, field) is not None:
            setattr(settings, field, getattr(args, field))
    if args.direction:
        settings.directions = (args.direction,)
    protocols = [p for p in PROTOCOLS if not args.protocol or p in args.protocol]
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        os.environ[name] = value

    started = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    load_at_start = os.getloadavg()[0]
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="trollmoves-bench-movers-", dir=args.workdir))
    shared = server_area(work, settings)
    rows: list[Row] = []
    reuses: list[Reuse] = []
    default_host()  # plugin discovery, once, before any timing
    try:
        print(f"interfaces: {', '.join(interfaces())}; sources in {work}; server side in {shared}", flush=True)
        big, small = make_files(work, settings)
        for name in protocols:
            reason = unavailable(name)
            if reason:
                print(f"[{name}] skipped: {reason}", flush=True)
                rows.append(Row(name, "-", "", "-", note=f"skipped: {reason}"))
                continue
            target = make_target(name, shared / name)
            t0 = time.monotonic()
            try:
                target.start()
                warm_up(target, small[0])
                if "put" in settings.directions:
                    rows += [_show(row) for row in big_put(target, big, settings)]
                if "get" in settings.directions:
                    rows.append(_show(big_get(target, big, shared / "downloaded.bin", settings)))
                row, reuse = small_files(target, small, settings)
                rows.append(_show(row))
                reuses.append(reuse)
                print(f"[{name}] reused {fmt(reuse.reused)} files/s ({reuse.reused_logins} logins), per file "
                      f"{fmt(reuse.per_file)} files/s ({reuse.per_file_logins} logins): {fmt(reuse.ratio)}x "
                      f"{reuse.note}", flush=True)
            except Exception as err:  # one broken protocol must not lose the others' numbers
                print(f"[{name}] FAILED: {type(err).__name__}: {err}", flush=True)
                rows.append(Row(name, "-", "", target.reference, note=f"failed: {type(err).__name__}: {err}"))
            finally:
                target.stop()
                print(f"[{name}] done in {time.monotonic() - t0:.0f} s", flush=True)
        duration = time.monotonic() - began
        print(f"\n{rows_table(rows)}\n\n{reuse_table(reuses)}\n\ntargets:")
        for goal, measured, verdict in targets(rows, reuses):
            print(f"  {verdict:8} {goal}: {measured}")
        out = args.markdown or (RESULTS / "movers.md" if not args.protocol else None)
        if out:
            command = "python -m benchmarks.movers " + " ".join(sys.argv[1:] if argv is None else argv)
            facts = machine_facts(work, shared, load_at_start)
            out.write_text(markdown(command.strip(), started=started, mode="quick" if args.quick else "full",
                                    duration=duration, settings=settings, facts=facts, rows=rows, reuses=reuses))
            print(f"\nwrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def _show(row: Row) -> Row:
    print(f"[{row.protocol}] {row.case}: ours {fmt(row.ours)} {row.unit}, {row.reference} {fmt(row.ref)} {row.unit}, "
          f"ratio {fmt(row.ratio, 2)} {row.note}", flush=True)
    return row
