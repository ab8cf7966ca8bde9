"""A client process with a state directory, killed with notifications it could not send, sends
them all after its restart, and still tells updates and deletions apart (a real Mosquitto)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import sqlite3
from pathlib import Path

import pytest
from support.bus import free_port, wait_until
from support.client import client_section
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess
from trollmoves_mqtt.testing import Mosquitto
from trollmoves_wis2 import notification
from trollmoves_wis2.testing import NotificationRecorder

pytestmark = pytest.mark.timeout(180)

TOPIC = "origin/a/wis2/se-smhi/data/core/weather/space-based-observations/{platform_name!l}/viirs"
BASE_URL = "https://data.example.org/viirs"
DATA_ID = "wis2/se-smhi/viirs/{platform_name}/{start_time:%Y%m%d%H%M}.dat"
_minutes = itertools.count()


def _stem() -> str:
    return f"NOAA-20_{dt.datetime(2026, 12, 2, 7, 0) + dt.timedelta(minutes=next(_minutes)):%Y%m%d%H%M}"


def _outbox(state: Path) -> list[str]:
    """The rows of the client chain's WIS2 outbox, as text."""
    found = list(state.glob("wis2-client-test-*.sqlite"))
    if not found:
        return []
    with sqlite3.connect(found[0], timeout=5) as db:
        return [str(row[0]) for row in db.execute("SELECT data FROM outbox")]


def _valid(recorder: NotificationRecorder) -> None:
    assert recorder.invalid == []
    assert all(notification.validate(n.raw) == [] for _, n, _ in recorder.received)


def test_kill_9_with_an_unsent_outbox_then_update_and_deletion(tmp_path: Path, servers) -> None:
    mosquitto = Mosquitto(tmp_path / "mosquitto").start()
    url = mosquitto.url("")
    server = servers("srv", origin=f"{tmp_path}/srv/in/{{platform_name}}_{{start_time:%Y%m%d%H%M}}_{{version}}.dat")
    out, state = tmp_path / "out", tmp_path / "state"
    out.mkdir()
    section = client_section(server.provider, f"{out}/", free_port(), wis2_broker=url, wis2_topic=TOPIC,
                             wis2_base_url=BASE_URL, wis2_data_id=DATA_ID, state_directory=str(state))
    client = ClientProcess(write_ini(tmp_path / "client.ini", {"test": section}), tmp_path / "client.log")
    before = NotificationRecorder(url)
    after: NotificationRecorder | None = None
    try:
        def probe_announced() -> bool:  # the first files may go before the client has subscribed
            probe_announced.name = f"{_stem()}_v1.dat"
            write_file(server.inbox, probe_announced.name, b"probe")
            return wait_until(lambda: before.about(probe_announced.name), timeout=3)

        assert wait_until(probe_announced, timeout=60, interval=0.0), client.log()[-3000:]
        probe = probe_announced.name
        _valid(before)
        before.close()
        mosquitto.stop()

        stems = [_stem() for _ in range(5)]
        for stem in stems:
            write_file(server.inbox, f"{stem}_v1.dat", stem.encode())
        assert wait_until(lambda: all((out / f"{stem}_v1.dat").exists() for stem in stems), timeout=60)
        # each committed before the chain went on (a file delivered earlier may be there too)
        assert wait_until(lambda: all(any(f"{stem}_v1.dat" in row for row in _outbox(state)) for stem in stems),
                          timeout=30), _outbox(state)
        client.kill()

        mosquitto.start()
        after = NotificationRecorder(url)
        client.start()
        assert wait_until(lambda: all(after.about(f"{stem}_v1.dat") for stem in stems), timeout=60), \
            client.log()[-3000:]
        for stem in stems:
            assert {n.rel for _, n, _ in after.about(f"{stem}_v1.dat")} == {"canonical"}

        # the same data_id again, after the restart: an update; a served file removed: a deletion
        write_file(server.inbox, f"{stems[0]}_v2.dat", b"reprocessed")
        assert wait_until(lambda: after.about(f"{stems[0]}_v2.dat"), timeout=60), client.log()[-3000:]
        (out / f"{stems[1]}_v1.dat").unlink()
        assert wait_until(lambda: len(after.about(f"{stems[1]}_v1.dat")) >= 2, timeout=30), client.log()[-3000:]
        assert wait_until(lambda: _outbox(state) == [], timeout=30)  # every one acknowledged
    finally:
        client.stop()
        before.close()
        if after is not None:
            after.close()
        mosquitto.stop()
    _valid(after)
    assert after.about(probe) == []  # acknowledged before the kill: not sent again
    (_, first, _), (_, update, _) = after.about(f"{stems[0]}_v1.dat")[0], after.about(f"{stems[0]}_v2.dat")[0]
    assert update.rel == "update" and update.data_id == first.data_id
    assert update.integrity_value == base64.b64encode(hashlib.sha256(b"reprocessed").digest()).decode()
    removed = [n for _, n, _ in after.about(f"{stems[1]}_v1.dat")]
    assert [n.rel for n in removed][-1] == "deletion" and {n.data_id for n in removed} == {removed[0].data_id}
