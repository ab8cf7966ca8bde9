"""SFTP requests sent without waiting, each answer collected later: uploads in fewer round trips.

paramiko's public calls wait for each answer in turn, and its pipelined writes drop their
status (``SFTPFile.set_pipelined``). :class:`Requests` sends any request at once and reads its
answer, errors included, when asked, through paramiko's own request numbering and dispatch
(``SFTPClient._async_request`` and ``_read_response``: private, but the same since paramiko 1.x,
and what its own prefetch uses). One thread at a time per session, as for any pooled connection.

:func:`open_for_writing` and :func:`write_file` put a file in two round trips: the OPEN, then
every WRITE with the FSTAT and CLOSE behind it, all answered together.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

from paramiko import SFTPAttributes, SFTPClient
from paramiko.message import Message
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    int64,
)

WRITES_IN_FLIGHT = 64
"""WRITE requests awaiting their answer before the next one waits (OpenSSH's channel window,
2 MiB, holds back the data long before that at 255 KiB per write)."""


class Requests:
    """Requests in flight on one SFTP session, by number; :meth:`answer` waits for one of them."""

    def __init__(self, sftp: SFTPClient) -> None:
        self.sftp = sftp
        self._answers: dict[int, tuple[int, Message]] = {}

    def send(self, kind: int, *args: object) -> int:
        """Send a request; return its number for :meth:`answer`."""
        return self.sftp._async_request(self, kind, *args)

    def answer(self, number: int) -> tuple[int, Message]:
        """The answer to request ``number``; an error status raises as paramiko's calls do
        (``OSError``, with ``errno`` for no such file and permission denied)."""
        while number not in self._answers:
            self.sftp._read_response()  # reads one answer, handing it to whoever sent its request
        kind, msg = self._answers.pop(number)
        if kind == CMD_STATUS:
            self.sftp._convert_status(msg)
        return kind, msg

    def _async_response(self, kind: int, msg: Message, number: int) -> None:
        """paramiko's dispatch hands an answer to the object that sent the request."""
        self._answers[number] = (kind, msg)


def open_for_writing(sftp: SFTPClient, path: str) -> bytes:
    """Create or truncate the remote file ``path``; return its handle (one round trip)."""
    requests = Requests(sftp)
    kind, msg = requests.answer(requests.send(
        CMD_OPEN, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC, SFTPAttributes()))
    if kind != CMD_HANDLE:
        raise OSError(f"unexpected answer {kind} to opening {path}")
    return msg.get_binary()


def write_file(sftp: SFTPClient, handle: bytes, source: BinaryIO, block: int,
               sent: Callable[[bytes], None]) -> int:
    """Write all of ``source`` to the open ``handle`` in ``block``-sized WRITEs, then close it;
    return the size the server reports for the file just before the close.

    Every write, the FSTAT and the CLOSE are in flight together: the whole call waits about one
    round trip plus the time the data takes. ``sent`` sees each block once it is queued. The
    handle is closed in every case (on error, without waiting for the answer).
    """
    requests = Requests(sftp)
    writes: deque[int] = deque()
    closed = False
    try:
        offset = 0
        while data := source.read(block):
            writes.append(requests.send(CMD_WRITE, handle, int64(offset), data))
            offset += len(data)
            sent(data)
            if len(writes) >= WRITES_IN_FLIGHT:
                requests.answer(writes.popleft())
        stat = requests.send(CMD_FSTAT, handle)
        close = requests.send(CMD_CLOSE, handle)
        closed = True
        while writes:
            requests.answer(writes.popleft())
        kind, msg = requests.answer(stat)
        requests.answer(close)
    finally:
        if not closed:
            with contextlib.suppress(Exception):  # the error that brought us here says more
                requests.send(CMD_CLOSE, handle)
    if kind != CMD_ATTRS:
        raise OSError(f"unexpected answer {kind} to FSTAT")
    return SFTPAttributes._from_msg(msg).st_size
