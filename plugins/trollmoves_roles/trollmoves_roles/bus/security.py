"""Who may talk to a request socket: client address allow-lists and ZeroMQ CURVE.

Request sockets live in their own zmq context (:func:`request_context`) with one ZAP handler
thread that runs for the life of the process. Each socket with a :class:`Policy` gets its
own ZAP domain, so policies never mix, and nothing can stop the handler while sockets use it
(unlike posttroll's shared authenticator, which any ``Publisher.stop()`` stops, see
``docs/security.md``).

* ``allowed_clients``: peers whose IP address is not in the list are refused during the zmq
  handshake: their requests never reach the server, and a (rate-limited) line is logged.
* CURVE: the socket is a CURVE server with ``server_secret_key_file``; only clients whose
  public key is a ``*.key`` file in ``clients_public_keys_directory`` are admitted. Keys added
  to or removed from the directory apply to new connections without a restart.

Key files are zmq certificates as ``trollmoves keys`` (or ``posttroll-generate-keys``) writes
them. Secret keys are never logged.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import zmq
from zmq.utils import z85

from trollmoves_roles.observe.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from trollmoves_roles.observe.metrics import RoleMetrics

LOG = logging.getLogger(__name__)
_REFUSED = RateLimitedLog(LOG)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SecurityError(ValueError):
    """A bad allow-list entry or key file; the message names it (never a key). ``key`` is the
    configuration key at fault, when known."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# -- allow-lists ------------------------------------------------------------------------

def parse_allowed_clients(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8 host.example"`` → networks. Host names are resolved once, here.

    Raises :class:`SecurityError` naming the entry that is neither an address, a network nor
    a resolvable host name.
    """
    networks: list[Network] = []
    for entry in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.match(entry):
            raise SecurityError(f"{entry!r} is not an IP address, a network (a.b.c.d/n) or a host name")
        try:
            infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as err:
            raise SecurityError(f"{entry!r} is not an IP address, a network (a.b.c.d/n) or a known host name "
                                f"({err})") from None
        for info in infos:
            network = ipaddress.ip_network(info[4][0], strict=False)
            if network not in networks:
                networks.append(network)
    return tuple(networks)


def address_allowed(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


# -- keys ---------------------------------------------------------------------------------

def load_secret_key(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """``(public, secret)`` z85 keys from a zmq secret certificate; SecurityError if unusable.

    A secret key file readable by group or others is used, with a warning.
    """
    from zmq.auth import load_certificate

    try:
        mode = os.stat(path).st_mode
        public, secret = load_certificate(path)
    except (OSError, ValueError) as err:
        raise SecurityError(f"cannot read the key file {path}: {getattr(err, 'strerror', None) or err}") from None
    if secret is None:
        raise SecurityError(f"{path} holds no secret key (give the .key_secret file)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        LOG.warning("Secret key file %s is readable by others (mode %o): chmod 600 it", path, stat.S_IMODE(mode))
    return public, secret


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    from zmq.auth import load_certificate

    try:
        return load_certificate(path)[0]
    except (OSError, ValueError) as err:
        raise SecurityError(f"cannot read the public key file {path}: {getattr(err, 'strerror', None) or err}") \
            from None


def create_keypair(directory: str | os.PathLike[str], name: str, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public, 0644) and ``NAME.key_secret`` (secret, 0600) in ``directory``.

    The secret file is never readable by others, not even for a moment (the umask is tightened
    while it is written). Existing files are kept unless ``force``.
    """
    from zmq.auth import create_certificates

    directory = Path(directory)
    if not name or "/" in name or name.startswith("."):
        raise SecurityError(f"invalid key name {name!r}")
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if not force:
        for path in (public, secret):
            if path.exists():
                raise SecurityError(f"{path} already exists (use --force to replace it)")
    directory.mkdir(parents=True, exist_ok=True)
    for path in (public, secret):
        if path.exists():
            path.unlink()
    previous = os.umask(0o077)
    try:
        create_certificates(directory, name)
    finally:
        os.umask(previous)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    return public, secret


class KeyDirectory:
    """The ``*.key`` public keys in a directory, re-read when the directory changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SecurityError(f"no such directory: {self.path}")
        self._stamp: tuple[int, int] | None = None
        self._keys: frozenset[bytes] = frozenset()
        self._lock = threading.Lock()
        self.keys()

    def keys(self) -> frozenset[bytes]:
        with self._lock:
            try:
                info = self.path.stat()
                stamp = (info.st_mtime_ns, info.st_ino)
            except OSError as err:
                LOG.error("Client keys directory %s unreadable: %s (no CURVE client admitted)", self.path, err)
                return frozenset()
            if stamp != self._stamp:
                keys = set()
                for file in sorted(self.path.glob("*.key")):
                    try:
                        keys.add(load_public_key(file))
                    except SecurityError as err:
                        LOG.warning("%s", err)
                self._keys, self._stamp = frozenset(keys), stamp
                LOG.info("Loaded %d client public key(s) from %s", len(keys), self.path)
            return self._keys


# -- policies and the ZAP handler -----------------------------------------------------------

@dataclass
class Policy:
    """Who a request socket admits. ``label`` names the socket in log lines (e.g. the chain).

    :param networks: allowed client addresses, or None for any.
    :param server_secret_key_file: makes the socket a CURVE server with this key.
    :param clients_keys: the public keys CURVE clients must present (needed with a server key).
    :param on_refused: called with (address, reason) for each refused connection (for metrics).
    """

    label: str
    networks: tuple[Network, ...] | None = None
    server_secret_key_file: str | None = None
    clients_keys: KeyDirectory | None = None
    on_refused: Callable[[str, str], None] | None = None
    _server_keys: tuple[bytes, bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.server_secret_key_file:
            self._server_keys = load_secret_key(self.server_secret_key_file)
            if self.clients_keys is None:
                raise SecurityError("a CURVE server key needs clients_public_keys_directory")

    @property
    def active(self) -> bool:
        return self.networks is not None or self._server_keys is not None

    def check(self, address: str, mechanism: str, credentials: list[bytes]) -> str | None:
        """None when the peer may connect, else the reason it may not."""
        if self.networks is not None and not address_allowed(address, self.networks):
            return "address not in allowed_clients"
        if self._server_keys is not None:
            if mechanism != "CURVE" or not credentials:
                return f"{mechanism} connection where CURVE is required"
            key = z85.encode(credentials[0])
            assert self.clients_keys is not None
            if key not in self.clients_keys.keys():  # noqa: SIM118 - a method, not a dict
                return "unknown CURVE client key"
        return None

    def apply(self, sock: zmq.Socket, domain: str) -> None:
        """Configure ``sock`` (before bind) for this policy under ZAP ``domain``."""
        sock.setsockopt_string(zmq.ZAP_DOMAIN, domain)
        if self._server_keys is not None:
            public, secret = self._server_keys
            sock.curve_publickey = public
            sock.curve_secretkey = secret
            sock.curve_server = True


class _ZapHandler:
    """Answers ZAP requests of one context from a daemon thread, by domain."""

    def __init__(self, context: zmq.Context) -> None:
        self._policies: dict[str, Policy] = {}
        self._lock = threading.Lock()
        self._socket = context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(ZAP_ENDPOINT)
        self._thread = threading.Thread(target=self._run, name="zap-handler", daemon=True)
        self._thread.start()

    def register(self, domain: str, policy: Policy) -> None:
        with self._lock:
            self._policies[domain] = policy

    def unregister(self, domain: str) -> None:
        with self._lock:
            self._policies.pop(domain, None)

    def _run(self) -> None:
        while True:
            try:
                frames = self._socket.recv_multipart()
            except zmq.ContextTerminated:
                self._socket.close(0)
                return
            except zmq.ZMQError as err:
                LOG.error("ZAP handler: %s", err)
                continue
            try:
                reply = self._answer(frames)
            except Exception as err:  # a bug here must refuse the peer, not stop authentication
                LOG.exception("ZAP handler failed on a request: %s", err)
                reply = [*frames[:2], b"500", b"internal error", b"", b""]
            try:
                self._socket.send_multipart(reply)
            except zmq.ContextTerminated:
                self._socket.close(0)
                return
            except zmq.ZMQError as err:  # keep serving: a dead handler would stall every handshake
                LOG.error("ZAP handler could not reply: %s", err)

    def _answer(self, frames: list[bytes]) -> list[bytes]:
        version, request_id, domain, address, _identity, mechanism, *credentials = frames
        text_domain, text_address = domain.decode(errors="replace"), address.decode(errors="replace")
        with self._lock:
            policy = self._policies.get(text_domain)
        reason = "unknown ZAP domain" if policy is None else policy.check(text_address, mechanism.decode(),
                                                                           credentials)
        if reason is None:
            return [version, request_id, b"200", b"OK", b"", b""]
        label = policy.label if policy is not None else text_domain
        _REFUSED.warning(f"refused:{label}:{reason}", "[%s] refused connection from %s: %s", label, text_address,
                         reason)
        if policy is not None and policy.on_refused is not None:
            policy.on_refused(text_address, reason)
        return [version, request_id, b"400", reason.encode(), b"", b""]


_context: zmq.Context | None = None
_handler: _ZapHandler | None = None
_context_lock = threading.Lock()
_domains = itertools.count(1)


def request_context() -> zmq.Context:
    """The process's context for request sockets, with its ZAP handler running."""
    global _context, _handler
    with _context_lock:
        if _context is None or _context.closed:
            _context = zmq.Context()
            _handler = _ZapHandler(_context)
        return _context


def secure(sock: zmq.Socket, policy: Policy) -> str | None:
    """Apply ``policy`` to ``sock`` (made in :func:`request_context`) before it binds.

    Returns the ZAP domain to pass to :func:`release` when the socket closes; None for an
    inactive policy (nothing to enforce).
    """
    if not policy.active:
        return None
    request_context()
    assert _handler is not None
    domain = f"trollmoves-{next(_domains)}"
    _handler.register(domain, policy)
    policy.apply(sock, domain)
    return domain


def release(domain: str | None) -> None:
    """Forget a closed socket's policy (connections to its domain are refused from now on)."""
    if domain is not None and _handler is not None:
        _handler.unregister(domain)


class RequestSecurity(Protocol):
    """The keys of a config section (server chain, mirror section) that protect its request socket."""

    name: str
    allowed_clients: tuple[str, ...] | None
    server_secret_key_file: str | None
    clients_public_keys_directory: str | None


def policy_for(section: RequestSecurity, metrics: RoleMetrics | None = None) -> Policy:
    """The request socket policy of ``section`` (inactive when it sets no security key); refused
    peers are counted in ``metrics.refused`` by reason."""
    def refused(address: str, reason: str) -> None:
        if metrics is not None:
            metrics.refused.inc(chain=section.name, reason="unknown key" if "key" in reason else "address")

    networks = None
    if section.allowed_clients is not None:
        networks = tuple(ipaddress.ip_network(n) for n in section.allowed_clients)
    keys = KeyDirectory(section.clients_public_keys_directory) if section.clients_public_keys_directory else None
    return Policy(section.name, networks=networks, server_secret_key_file=section.server_secret_key_file,
                  clients_keys=keys, on_refused=refused)


@dataclass(frozen=True)
class CurveClient:
    """Our CURVE key pair and the public key of the server (or publisher) we connect to.

    Load it once (:meth:`load`, at config time, so a bad file fails early) and :meth:`apply`
    it to each socket before it connects. The secret never appears in ``repr``.
    """

    public: bytes
    secret: bytes = field(repr=False)
    server: bytes

    @classmethod
    def load(cls, secret_key_file: str | os.PathLike[str],
             server_public_key_file: str | os.PathLike[str]) -> CurveClient:
        """The keys from zmq certificate files; SecurityError naming the file that is unusable."""
        public, secret = load_secret_key(secret_key_file)
        return cls(public, secret, load_public_key(server_public_key_file))

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` (before connect) a CURVE client with these keys."""
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server


SECRET_KEY_FILE = "client_secret_key_file"
"""The configuration key of our own CURVE key pair, in every role that connects out."""
PUBLISHER_KEY_FILE = "publisher_public_key_file"
"""The configuration key of the public key of the (``secure_zmq``) publishers subscribed to."""


def load_curve_clients(secret_key_file: str | None, peers: Mapping[str, str | None]) -> dict[str, CurveClient]:
    """Our key pair (``client_secret_key_file``) with each peer's public key file, by its config key
    (``server_public_key_file``, ``publisher_public_key_file``): a :class:`CurveClient` for each peer
    key given; ``{}`` when no key is set. Every file is read now, so a bad one fails at start.

    :raises SecurityError: with ``key`` set: a peer key without our pair, our pair without any
        peer key, or a file that cannot be used.
    """
    given = {key: path for key, path in peers.items() if path}
    if not secret_key_file:
        for key in given:
            raise SecurityError(f"needs {SECRET_KEY_FILE} (this side's CURVE key pair)", key=key)
        return {}
    if not given:
        raise SecurityError(f"needs {' or '.join(peers)} (the public key of the peer to connect to)",
                            key=SECRET_KEY_FILE)
    try:
        public, secret = load_secret_key(secret_key_file)
    except SecurityError as err:
        raise SecurityError(str(err), key=SECRET_KEY_FILE) from None
    clients = {}
    for key, path in given.items():
        try:
            clients[key] = CurveClient(public, secret, load_public_key(path))
        except SecurityError as err:
            raise SecurityError(str(err), key=key) from None
    return clients


def curve_client(sock: zmq.Socket, secret_key_file: str | os.PathLike[str],
                 server_public_key_file: str | os.PathLike[str]) -> None:
    """Make ``sock`` (before connect) a CURVE client with our key pair and the server's public key."""
    CurveClient.load(secret_key_file, server_public_key_file).apply(sock)
