"""SFTP requests sent without waiting, each answer collected later: uploads in fewer round trips.

paramiko's public calls wait for each answer in turn, and its pipelined writes drop their
status (``SFTPFile.set_pipelined``). :class:`Requests` sends any request at once and reads its
answer, errors included, when asked, through paramiko's own request numbering and dispatch
(``SFTPClient._async_request`` and ``_read_response``: private, but the same since paramiko 1.x,
and what its own prefetch uses). One thread at a time per session, as for any pooled connection.

:func:`open_for_writing` and :func:`write_file` put a file in two round trips: the OPEN, then
every WRITE with the FSTAT and CLOSE behind it, all answered together. :func:`rename` sends the
POSIX rename that ends an upload with the OPEN of a :class:`Spare` behind it: the temporary file
of the next upload into the same directory, whose own OPEN then costs no round trip.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from paramiko import SFTPAttributes, SFTPClient
from paramiko.message import Message
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_EXTENDED,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_REMOVE,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    int64,
)

from trollmoves_ssh.connection import is_server_status

LOG = logging.getLogger(__name__)

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

    def send_unanswered(self, kind: int, *args: object) -> None:
        """Send a request whose answer nobody waits for (paramiko drops it when it comes)."""
        self.sftp._async_request(type(None), kind, *args)

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
    return _handle(requests, _send_open(requests, path), path)


def _send_open(requests: Requests, path: str) -> int:
    return requests.send(CMD_OPEN, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC, SFTPAttributes())


def _handle(requests: Requests, opening: int, path: str) -> bytes:
    kind, msg = requests.answer(opening)
    if kind != CMD_HANDLE:
        raise OSError(f"unexpected answer {kind} to opening {path}")
    return msg.get_binary()


@dataclass(eq=False)
class Spare:
    """A temporary file being opened ahead, on one SFTP session, for the next upload into ``directory``."""

    directory: str
    path: str
    requests: Requests
    opening: int
    """The number of its OPEN request."""
    _handle: bytes | None = None
    _answered: bool = False

    def handle(self) -> bytes | None:
        """Its handle, or None when the server refused to create it (the upload opens its own).

        :raises: whatever loses the session meanwhile (the file may exist then).
        """
        if not self._answered:
            self._answered = True
            try:
                self._handle = _handle(self.requests, self.opening, self.path)
            except OSError as err:
                if not is_server_status(err):
                    raise
                LOG.debug("Could not open %s ahead: %s", self.path, err)
        return self._handle

    def discard(self, *, wait: bool) -> None:
        """Close and delete the file; ``wait`` for the answers (else they are dropped unread)."""
        handle = self.handle()
        if handle is None:
            return
        if not wait:
            self.requests.send_unanswered(CMD_CLOSE, handle)
            self.requests.send_unanswered(CMD_REMOVE, self.path)
            return
        closing = self.requests.send(CMD_CLOSE, handle)
        removing = self.requests.send(CMD_REMOVE, self.path)
        for number in (closing, removing):
            with contextlib.suppress(OSError):
                self.requests.answer(number)


def rename(sftp: SFTPClient, source: str, dest: str, spare: str | None = None) -> Spare | None:
    """Rename ``source`` to ``dest`` with ``posix-rename@openssh.com`` (one round trip), opening the
    file ``spare`` meanwhile, if given, in ``dest``'s directory; return that :class:`Spare`.

    :raises OSError: the rename failed; without ``errno`` when the server lacks the extension. Any
        other error (the session lost) leaves ``spare`` possibly created: the caller deletes it later.
    """
    requests = Requests(sftp)
    renaming = requests.send(CMD_EXTENDED, "posix-rename@openssh.com", source, dest)
    ahead = None
    if spare is not None:
        ahead = Spare(posixpath.dirname(spare), spare, requests, _send_open(requests, spare))
    try:
        requests.answer(renaming)
    except OSError as err:
        if ahead is not None and is_server_status(err):
            ahead.discard(wait=False)
        raise
    return ahead


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
