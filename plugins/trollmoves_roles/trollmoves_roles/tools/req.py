"""``trollmoves req``: ask a server's request socket for ``ping``, ``info`` or ``push``.

Works against our servers and upstream trollmoves 0.19 alike: one posttroll message on a
zmq REQ socket, one reply. Timeouts follow the "lazy pirate" pattern: after ``--timeout``
seconds without a reply the socket is closed (LINGER 0, so nothing queued survives) and a new
one re-sends the request, at most ``--retries`` more times.

Exit status: 0 for a success reply (``pong``, ``info``, ``ack``, ``file``/``dataset``/
``collection``), 1 for an ``err``/``error``/``unknown`` reply, an undecodable reply or no reply
at all, 2 for bad usage. The reply's data goes to stdout as JSON (``--raw``: the whole message
as it came over the wire); failures get one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from trollmoves_core.command import Command
from trollmoves_core.plugins import PluginHost

LOG = logging.getLogger(__name__)

REQUESTS = ("ping", "info", "push")
SUCCESS_TYPES = {"ping": {"pong"}, "info": {"info"}, "push": {"file", "dataset", "collection"}}
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2


class UsageError(ValueError):
    """Bad command-line input; reported as one line with exit status 2."""


@dataclass
class Reply:
    """What came back: a decoded message, raw bytes that did not decode, or nothing."""

    raw: bytes | None
    message: Any = None  # posttroll Message when ``raw`` decoded


def normalise_address(address: str) -> str:
    """``host:port`` or ``tcp://host:port`` → ``tcp://host:port``; UsageError otherwise."""
    text = address.strip()
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "tcp":
            return text  # ipc://, inproc://... : zmq reports what it cannot use
    else:
        rest = text
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"address {address!r}: expected host:port or tcp://host:port")
    return f"tcp://{rest}"


def parse_extra(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs as strings; ``key:=json`` pairs decoded as JSON (numbers, lists...)."""
    extra: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or key == ":":
            raise UsageError(f"--extra {item!r}: expected key=value or key:=json")
        if key.endswith(":"):
            try:
                extra[key[:-1]] = json.loads(value)
            except json.JSONDecodeError as err:
                raise UsageError(f"--extra {item!r}: invalid JSON: {err.msg}") from None
        else:
            extra[key] = value
    return extra


def build_request(args: argparse.Namespace) -> Any:
    """The posttroll message for the parsed command line."""
    from posttroll.message import Message

    topic = args.topic
    if not topic.startswith("/"):
        raise UsageError(f"--topic {topic!r}: a posttroll subject starts with '/'")
    push_only = [flag for flag, value in (("--uri", args.uri), ("--destination", args.destination),
                                          ("--extra", args.extra)) if value]
    if args.request != "push" and push_only:
        raise UsageError(f"{', '.join(push_only)}: only for push")
    if args.request != "info" and args.max_count is not None:
        raise UsageError("--max-count: only for info")
    if args.request == "ping":
        return Message(topic, "ping")
    if args.request == "info":
        return Message(topic, "info", {"max_count": args.max_count} if args.max_count is not None else "")
    if not args.uri or not args.destination:
        raise UsageError("push needs --uri PATH and --destination URL")
    data = {"uri": args.uri, "uid": os.path.basename(args.uri.rstrip("/"))}
    data.update(parse_extra(args.extra))
    data["destination"] = args.destination
    return Message(topic, "push", data)


def request(address: str, payload: str, *, timeout: float, retries: int,
            curve: tuple[str, str] | None = None) -> Reply:
    """Send ``payload`` to ``address`` and wait for one reply, lazy-pirate style.

    Each attempt uses a fresh REQ socket with LINGER 0; at most ``retries + 1`` sends. A
    server may thus receive a push more than once, as with upstream's client.

    :param curve: ``(our secret key file, server public key file)`` for a CURVE server. A
        server that does not admit our key never answers: that looks like no reply.
    """
    import zmq
    from posttroll.message import Message

    from trollmoves_roles.bus.security import curve_client

    context = zmq.Context.instance()
    for attempt in range(1, retries + 2):
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            if curve is not None:
                curve_client(sock, *curve)
            sock.connect(address)
            sock.send_string(payload)
            if sock.poll(int(timeout * 1000), zmq.POLLIN):
                raw = sock.recv()
                try:
                    return Reply(raw, Message.decode(raw))
                except Exception:  # upstream answers some pushes with the bare string "None"
                    return Reply(raw)
        finally:
            sock.close()
        LOG.warning("No reply from %s within %.1f s (attempt %d of %d)", address, timeout, attempt, retries + 1)
    return Reply(None)


def report(args: argparse.Namespace, reply: Reply, address: str) -> int:
    """Print the reply; return the exit status."""
    if reply.raw is None:
        attempts = args.retries + 1
        _fail(f"no reply from {address} after {attempts} attempt{'s' * (attempts > 1)} of {args.timeout:g} s")
        return 1
    if reply.message is None:
        _fail(f"undecodable reply from {address}: {reply.raw[:200]!r}")
        return 1
    message = reply.message
    if args.raw:
        print(reply.raw.decode("utf-8", errors="replace"))  # noqa: T201 - the command's output
    if message.type in SUCCESS_TYPES[args.request]:
        if not args.raw:
            print(json.dumps(message.data, indent=2, default=_json_default))  # noqa: T201
        return 0
    detail = f": {message.data}" if message.data else ""
    _fail(f"{message.type} reply from {address}{detail}")
    return 1


def curve_keys(args: argparse.Namespace) -> tuple[str, str] | None:
    """The CURVE key files given, checked readable; None without them."""
    secret, server = getattr(args, "curve_secret_key", None), getattr(args, "curve_server_key", None)
    if not secret and not server:
        return None
    if not (secret and server):
        raise UsageError("--curve-secret-key and --curve-server-key go together")
    from trollmoves_roles.bus.security import SecurityError, load_public_key, load_secret_key
    try:
        load_secret_key(secret)
        load_public_key(server)
    except SecurityError as err:
        raise UsageError(str(err)) from None
    return secret, server


def _fail(text: str) -> None:
    print(f"trollmoves req: {text}", file=sys.stderr)  # noqa: T201 - the command's one error line


def _json_default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class RequestTool(Command):
    """``trollmoves req ADDRESS ping|info|push``: a one-shot request."""

    NAME = "req"
    HELP = "send one ping, info or push request to a server's request port and print the reply"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.description = (cls.HELP + ". ADDRESS is the server's request_address:request_port "
                              "(host:port or tcp://host:port). Exit 0 on success, 1 on an error reply "
                              "or no reply, 2 on bad usage.")
        parser.add_argument("address", metavar="ADDRESS", help="host:port or tcp://host:port")
        parser.add_argument("request", choices=REQUESTS, help="the request to send")
        parser.add_argument("--topic", default="/", help="request subject; info lists files announced under it "
                            "(default: /, everything)")
        parser.add_argument("--max-count", type=int, metavar="N", help="info: list at most N files")
        parser.add_argument("--uri", metavar="PATH", help="push: the announced file to send (path on the server)")
        parser.add_argument("--destination", metavar="URL", help="push: where to send it (file:///dir/, ftp://...)")
        parser.add_argument("--extra", action="append", metavar="KEY=VALUE",
                            help="push: more message data; KEY:=JSON for non-strings (repeatable)")
        parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                            help=f"wait this long for each reply (default {DEFAULT_TIMEOUT:g})")
        parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                            help=f"re-send on a new socket this many times after a timeout (default "
                                 f"{DEFAULT_RETRIES}); a re-sent push may be served twice")
        parser.add_argument("--raw", action="store_true", help="print the whole reply message as received")
        parser.add_argument("--curve-secret-key", metavar="FILE",
                            help="talk CURVE with this secret key file (NAME.key_secret from `trollmoves keys`); "
                                 "needs --curve-server-key")
        parser.add_argument("--curve-server-key", metavar="FILE", help="the server's public key file (NAME.key)")

    @classmethod
    def run(cls, args: argparse.Namespace, host: PluginHost) -> int:
        try:
            if args.timeout <= 0:
                raise UsageError("--timeout must be positive")
            if args.retries < 0:
                raise UsageError("--retries must not be negative")
            address = normalise_address(args.address)
            message = build_request(args)
            curve = curve_keys(args)
        except UsageError as err:
            _fail(str(err))
            return 2
        LOG.debug("Sending %s on %s to %s", message.type, message.subject, address)  # data may hold a password
        reply = request(address, message.encode(), timeout=args.timeout, retries=args.retries, curve=curve)
        return report(args, reply, address)
