"""docs/quickstart.md works as written: its shell blocks (after the install) run end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.bus import free_port

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
PORTS = ("9010", "9092", "9020")


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", QUICKSTART.read_text(), re.S)


def test_quickstart_installs_from_this_repository() -> None:
    install = shell_blocks()[0]
    assert "pip install . ./plugins/trollmoves_roles" in install


@pytest.mark.slow
def test_quickstart_runs(tmp_path: Path) -> None:
    script = "\n".join(shell_blocks()[1:])
    for port in PORTS:  # the same ports everywhere in the page, free ones here
        script = re.sub(rf"\b{port}\b", str(free_port()), script)
    # the page sleeps a second for the delivery; here we wait for it, however slow the machine
    assert "sleep 1\nfind out" in script
    script = script.replace("sleep 1\nfind out", 'for _ in $(seq 300); do [ -n "$(find out -type f)" ] && break; '
                            "sleep 0.1; done\nfind out")
    bin_dir = Path(sys.executable).parent
    wrapper = f"""set -e
trap 'kill $SERVER $CLIENT 2>/dev/null || true' EXIT
export HOME={tmp_path} PATH={bin_dir}:$PATH
{script}
wait $SERVER $CLIENT || true
"""
    done = subprocess.run(["bash", "-c", wrapper], capture_output=True, text=True, timeout=90, check=False,
                          cwd=tmp_path)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()}" for p in (tmp_path / "tm").glob("*.log"))
    assert done.returncode == 0, done.stdout + done.stderr + logs
    assert "server.ini: OK" in done.stdout and "client.ini: OK" in done.stdout
    assert '"station": "my-laptop"' in done.stdout
    assert "out/NOAA-19/NOAA-19_202401020304.dat" in done.stdout, done.stdout + logs
    assert (tmp_path / "tm" / "out" / "NOAA-19" / "NOAA-19_202401020304.dat").read_text() == "hello\n"
    assert '"/demo/data/NOAA-19_202401020304.dat"' in done.stdout
