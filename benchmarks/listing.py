"""What the server's announcement listing costs when it holds a client's catch-up window.

``python -m benchmarks.listing [--entries 36000]``: announces ``entries`` files (an hour at
10 files/s) through one chain's :class:`~trollmoves_roles.server.announced.AnnouncedFiles`
with a journal, as ``trollmoves server --state-directory`` does, and prints the Python heap the
records and listing hold (tracemalloc), the journal's size on disk, the time to announce, to
restore at a restart and to list one page of 1000 after the oldest time (a client catching up).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from trollmoves_roles.server.announced import AnnouncedFiles
from trollmoves_roles.state.journal import Journal

TOPIC = "/polar/direct_readout/hrpt"


def announcement(path: str, i: int) -> dict[str, object]:
    """A realistic announcement's data (the fields a trollsift pattern gives, uri, uid, request_address)."""
    start = dt.datetime(2026, 12, 2, 12, 0) + dt.timedelta(seconds=i)
    return {"sensor": "avhrr/3", "platform_name": "NOAA-19", "orbit_number": 80000 + i // 6000,
            "start_time": start, "end_time": start + dt.timedelta(minutes=1), "format": "HRPT",
            "data_processing_level": "0", "uri": path, "uid": os.path.basename(path),
            "request_address": "192.168.10.20:9011"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=36000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data" / "direct_readout" / "hrpt"
        root.mkdir(parents=True)
        paths = []
        for i in range(args.entries):
            path = root / f"hrpt_noaa19_20261202_{i:06d}_80000.l1b"  # ~70 characters with the temporary root
            path.touch()
            paths.append(str(path))
        journal = Journal(Path(tmp) / "server.sqlite", table="announced")
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        announced = AnnouncedFiles(listed=max(args.entries, 1))
        announced.attach(journal)
        started = time.perf_counter()
        for i, path in enumerate(paths):
            announced.announce([(path, os.path.basename(path))], TOPIC, "hrpt",
                               message=(TOPIC, "file", announcement(path, i)))
        announcing = time.perf_counter() - started
        gc.collect()
        heap = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        announced.detach()
        journal.close()
        disk = sum(os.path.getsize(p) for p in Path(tmp).glob("server.sqlite*"))
        started = time.perf_counter()
        restored = AnnouncedFiles(listed=max(args.entries, 1))
        journal = Journal(Path(tmp) / "server.sqlite", table="announced")
        restored.attach(journal)
        restoring = time.perf_counter() - started
        started = time.perf_counter()
        page, more = restored.listed_after("hrpt", 0.0, 1000)
        paging = time.perf_counter() - started
        journal.close()
        assert len(page) == min(1000, args.entries) and more == (args.entries > 1000)
        print(json.dumps({"entries": args.entries, "heap_mib": round(heap / 2**20, 1),
                          "heap_bytes_per_entry": round(heap / args.entries), "journal_mib": round(disk / 2**20, 1),
                          "journal_bytes_per_entry": round(disk / args.entries),
                          "announce_seconds": round(announcing, 2), "restore_seconds": round(restoring, 2),
                          "page_of_1000_seconds": round(paging, 3)}))


if __name__ == "__main__":
    main()
