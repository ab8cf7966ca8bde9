"""Where our server's and client's memory grows over repeated bursts (tracemalloc diff).

``python -m benchmarks.memgrowth [--rounds 10] [--files 2000]``: runs our server and client
under :mod:`benchmarks.memprofile`, snapshots both after the first burst and after the last,
and prints RSS per round and the allocation sites that grew most (Python heap only).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from benchmarks.harness import Setup
from benchmarks.impls import OURS_VENV, REPO, Ours, _has_option
from benchmarks.procs import Proc
from benchmarks.scenarios import SETTLE_SECONDS, Params, _burst


class Traced(Ours):
    def _role(self, role: str) -> list[str]:
        bind = ["--bind", "127.0.0.1"] if _has_option((str(self.venv / "bin" / "trollmoves"), role), "--bind") else []
        return [str(self.python), "-m", "benchmarks.memprofile", role, *bind]


def snapshot(proc: Proc, out: Path, count: int) -> tracemalloc.Snapshot:
    os.kill(proc.pid, signal.SIGUSR2)
    done = out / f"{proc.pid}-{count}.done"
    deadline = time.monotonic() + 120
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(out / f"{proc.pid}-{count}.snap"))


def report(name: str, first: tracemalloc.Snapshot, last: tracemalloc.Snapshot, top: int, baseline: str) -> None:
    print(f"\n### {name}: Python heap {sum(s.size for s in first.statistics('filename')) / 2**20:.1f} MiB "
          f"at {baseline} -> {sum(s.size for s in last.statistics('filename')) / 2**20:.1f} MiB at the end")
    skip = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    first, last = first.filter_traces(skip), last.filter_traces(skip)
    for stat in last.compare_to(first, "lineno")[:top]:
        print(f"{stat.size_diff / 1024:+9.0f} KiB {stat.count_diff:+7d} blocks  {stat.traceback[0]}")
    print("\nlargest growth by traceback:")
    for stat in last.compare_to(first, "traceback")[:3]:
        print(f"{stat.size_diff / 1024:+9.0f} KiB {stat.count_diff:+7d} blocks")
        for line in [f for f in stat.traceback.format() if f.strip().startswith("File")][-8:]:
            print("     " + line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memgrowth", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--baseline", choices=("start", "round1"), default="round1",
                        help="compare the end with the start-up (warm-up included) or with round 1 (default)")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    root = Path(tempfile.mkdtemp(prefix="trollmoves-memgrowth-"))
    out = root / "snapshots"
    out.mkdir()
    os.environ["TROLLMOVES_TRACEMALLOC_DIR"] = str(out)
    params = Params(burst_files=args.files, budget=3600)
    with Setup(Traced("ours", OURS_VENV), root / "run") as setup:
        setup.start()
        procs = {"server": setup.server_procs[0], "client": setup.client_proc}
        print("round  server RSS MiB  client RSS MiB  lost dup", flush=True)
        print(f"start  {procs['server'].rss_kib() / 1024:14.1f}  {procs['client'].rss_kib() / 1024:14.1f}")
        firsts = {name: snapshot(p, out, 1) for name, p in procs.items()} if args.baseline == "start" else {}
        for r in range(args.rounds):
            result = _burst(setup, args.files, 10 * 1024, f"m{r:02d}", params=params,
                            deadline=time.monotonic() + 3600)
            setup.clear()
            time.sleep(SETTLE_SECONDS)
            print(f"{r + 1:5d}  {procs['server'].rss_kib() / 1024:14.1f}  {procs['client'].rss_kib() / 1024:14.1f}"
                  f"  {result['lost']:4d} {result['dup']:3d}", flush=True)
            if r == 0 and args.baseline == "round1":
                firsts = {name: snapshot(p, out, 1) for name, p in procs.items()}
        lasts = {name: snapshot(p, out, 2) for name, p in procs.items()}
    for name in procs:
        report(name, firsts[name], lasts[name], args.top, args.baseline)
    print(f"\nwork dir {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
