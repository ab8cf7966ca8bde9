"""``python -m benchmarks [scenario ...] [--quick]``: run each scenario against upstream, then ours.

Everything runs on loopback with fixed ports, so the run re-executes itself inside a private
network namespace (``scripts/in-netns``) unless it is already in one or ``--no-netns`` is given:
upstream binds its sockets on all interfaces.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import harness, report
from benchmarks.harness import SetupError
from benchmarks.impls import IMPLEMENTATIONS, REPO
from benchmarks.scenarios import SCENARIOS, Params

NETNS_ENV = "TROLLMOVES_BENCH_NETNS"

DESCRIPTIONS = {
    "latency": "Files of 1 KiB written one at a time (hidden temp name, renamed into the watched dir); "
               "time from the rename to the client's republished `file` message.",
    "burst": "Files of 10 KiB renamed into the watched dir at once; time from the first rename until the last "
             "`file` message; lost/dup from the client's messages, `dest` columns from the destination dir; "
             "CPU seconds spent by the processes during the burst.",
    "big": "One big file through the file mover end to end (rename -> client's `file` message), destination "
           "on another file system than the source, against `cp` between the same two dirs; each run is preceded "
           "by its `cp`, and the best times are compared (the medians show the noise). `1 hash s`: one pass of "
           "the chain's checksum (hashlib, same run, best) over the file; a checksummed transfer needs two in a "
           "row at least (the server's at announce, before any request; the mover's verified copy, hashed beside "
           "the kernel's copy), so its `limit s` is 1 hash + max(cp, 1 hash) (plain cp without a checksum); "
           "`ours-checksum-none` is ours with `checksum = none`: the copy path alone.",
    "sftp": "The big file pushed by the server over SFTP to a loopback OpenSSH sshd (client destination "
            "`sftp://127.0.0.1:PORT/dir/{name}.dat` since upstream's SFTP mover does not add the basename to a "
            "`dir/` destination, `login`, `create_target_directory = false`;"
            " server `connection_parameters__*` key files, a HOME whose "
            "`.ssh/known_hosts` knows the sshd), "
            "against the OpenSSH `scp` client with the same key; best of the runs compared.",
    "fanin": "Several servers, one client; the files per server are renamed into their watched dirs at once.",
    "wan": "The server in its own network namespace, joined to the client's by a user-space TCP proxy that delays "
           "each direction by 25 ms and caps it at 100 Mbit/s (link MiB/s: the same bytes pushed back to back "
           "through it in the same run); a burst of 100 KiB files to a file destination (only announcements and "
           "requests cross the link), then to an SFTP destination on an sshd across the link (logins: new SSH "
           "sessions the burst opened).",
    "mqtt_latency": "Ours only: the latency files with server and client on a local Mosquitto (`--bus mqtt://`, "
                    "one client without a group); rename -> the client's result as a subscriber on the broker sees "
                    "it.",
    "mqtt_burst": "Ours only: the burst (10 KiB files renamed in at once) with one client over ZeroMQ, then on a local "
                  "Mosquitto with one client without a group and groups of 1, 2 and 4 (members start "
                  "`takeover_after` before the burst); vs ZeroMQ = files/s over the ZeroMQ row's; CPU per file of "
                  "the server, each client and the broker during the burst. Everything shares this machine's cores: "
                  "a group on N hosts is limited by the server's and the broker's CPU per file, not the members'.",
    "resources": "VmRSS of server and client after start-up (start) and after repeated bursts (end; read 3 s after "
                 "each round's files are deleted, once both implementations have handled the deletions), growth = "
                 "end/start - 1 (and end/after-round-1 - 1, which leaves out the one-time warm-up of the first "
                 "burst: threads, sockets, caches); then idle CPU (utime+stime) over an idle window, in % of one core.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes for the whole run")
    parser.add_argument("--impl", action="append", choices=[i.name for i in IMPLEMENTATIONS],
                        help="run only this implementation (repeatable)")
    parser.add_argument("--big-mib", type=int, help="size of the big file in MiB (default 1024, quick 100)")
    parser.add_argument("--big-dest", type=Path, help="destination dir of the big file (default: /dev/shm)")
    parser.add_argument("--rounds", type=int, help="bursts in the resources scenario (default 10, quick 3)")
    parser.add_argument("--budget", type=float, help="seconds per scenario and implementation")
    parser.add_argument("--workdir", type=Path, help="where to create the watched and destination dirs")
    parser.add_argument("--markdown", type=Path,
                        help="write the markdown summary here (default: results/latest.md, for complete runs only)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs) afterwards")
    parser.add_argument("--checksum", choices=["sha256", "sha512", "none"],
                        help="our servers' checksum key (default: theirs, sha256), to compare the cost")
    parser.add_argument("--no-netns", action="store_true", help="do not re-run inside a private network namespace")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    if not args.no_netns and not os.environ.get(NETNS_ENV) and _outside_netns():
        os.environ[NETNS_ENV] = "1"
        os.execv(str(REPO / "scripts" / "in-netns"),
                 [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "benchmarks", *sys.argv[1:]])
    overrides = {k: v for k, v in (("big_mib", args.big_mib), ("budget", args.budget), ("big_dest", args.big_dest),
                                            ("resource_rounds", args.rounds))
                 if v is not None}
    params = Params.quick(**overrides) if args.quick else Params(**overrides)
    if args.checksum:
        harness.OURS_SERVER_EXTRA["checksum"] = args.checksum
    scenarios = args.scenarios or list(SCENARIOS)
    impls = [i for i in IMPLEMENTATIONS if (i.name in args.impl if args.impl else i.by_default)]
    root = Path(tempfile.mkdtemp(prefix="trollmoves-bench-", dir=args.workdir))
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t_start = time.monotonic()
    run: dict = {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": started.isoformat(), "mode": "quick" if args.quick else "full",
        "params": params.__dict__, "machine": report.machine_facts(), "descriptions": DESCRIPTIONS, "results": {},
    }
    print(f"work dir {root}; interfaces: {', '.join(run['machine']['netns_interfaces'])}", flush=True)
    try:
        for scenario in scenarios:
            results: dict[str, dict] = {}
            for impl in impls:
                if not impl.scenarios or scenario in impl.scenarios:
                    results[impl.name] = _run_one(scenario, impl, root / f"{scenario}-{impl.name}", params)
            run["results"][scenario] = results
            print(f"\n## {scenario}\n{report.table(scenario, results)}\n", flush=True)
    finally:
        run["duration_s"] = time.monotonic() - t_start
        complete = not args.scenarios and not args.impl and not args.rounds and not args.checksum
        markdown = args.markdown or (report.RESULTS / "latest.md" if complete else None)
        written = report.write(run, markdown)
        print("targets (ours):")
        for name, measured, verdict in report.targets(run["results"]):
            print(f"  {verdict:7} {name}: {measured}")
        print(f"\nwrote {', '.join(map(str, written))}")
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def _run_one(scenario: str, impl, workdir: Path, params: Params) -> dict:
    reason = impl.unavailable()
    if reason:
        print(f"[{scenario}] {impl.name}: skipped: {reason}", flush=True)
        return {"error": reason}
    print(f"[{scenario}] {impl.name} ...", flush=True)
    began = time.monotonic()
    try:
        result = SCENARIOS[scenario](impl, workdir, params)
    except SetupError as err:
        print(f"[{scenario}] {impl.name}: FAILED: {err}", flush=True)
        return {"error": str(err)}
    except Exception as err:  # one broken scenario must not lose the others' numbers
        traceback.print_exc()
        return {"error": f"{type(err).__name__}: {err}"}
    result["wall_s"] = time.monotonic() - began
    print(f"[{scenario}] {impl.name}: done in {result['wall_s']:.1f} s", flush=True)
    return result


def _outside_netns() -> bool:
    """True when interfaces other than loopback are visible."""
    return any(name != "lo" for name in report.interfaces())
