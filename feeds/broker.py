"""Broker URLs: the one parser (:func:`parse_broker_url`) and the one redaction
(:func:`redact_url`) of every MQTT transport, the config and the CLI.

Accepted: ``mqtt://[user[:password]@]host[:port]`` (plain, default port 1883) and
``mqtts://...`` (TLS, default port 8883); user and password are percent-decoded. Nothing else
(no other scheme, no path, query or fragment, no port 0). A URL is only ever printed or logged
through :func:`redact_url`, which replaces the password with ``***``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack
from urllib.parse import unquote, urlsplit

from hedger.errors import TransportError

SCHEMES: dict[str, int] = {"mqtt": 1883, "mqtts": 8883}
"""Accepted schemes and their default ports."""

_HIDDEN = "***"


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """A parsed broker URL (``password`` is decoded; :attr:`redacted` is safe to show)."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @property
    def tls(self) -> bool:
        """Whether the scheme asks for TLS (``mqtts``)."""
        return self.scheme == "mqtts"

    @property
    def redacted(self) -> str:
        """The URL without its password: ``mqtt://user:***@host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = ""
        if self.username is not None:
            user = _quote_user(self.username)
            user += f":{_HIDDEN}@" if self.password is not None else "@"
        return f"{self.scheme}://{user}{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse a broker URL (see the module documentation). Raises
    :class:`~hedger.errors.TransportError` (with the URL redacted) when it is not one."""
    shown = redact_url(url)

    def bad(problem: str) -> TransportError:
        return TransportError("mqtt", shown, problem)

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise bad("has a bad host or port") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise bad("must look like mqtt://host:port or mqtts://host:port")
    if not parts.hostname:
        raise bad("has no host")
    if port == 0:
        raise bad("has port 0")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("must not have a path, query or fragment")
    return BrokerUrl(
        scheme=scheme,
        host=parts.hostname,
        port=port or SCHEMES[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def redact_url(url: str) -> str:
    """``url`` with the password of its user part (``scheme://user:password@host``, or
    ``user:password@host`` without a scheme) replaced by ``***``; anything else is left as it
    is. Never raises, whatever the text."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # no scheme: the user part, if any, starts the text
        scheme, rest = "", url
    # the last "@" ends the user part even when an unquoted password holds "/", "?", "#" or
    # "@" (a broker URL has no path worth keeping, so erring towards hiding costs nothing)
    userinfo, at, hostport = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:{_HIDDEN}" if colon else user
    return f"{scheme}{sep}{hidden}@{hostport}"


def _quote_user(user: str) -> str:
    # the characters that would change how the redacted URL reads
    return user.replace("%", "%25").replace("@", "%40").replace(":", "%3A").replace("/", "%2F")


class ClientOptions(TypedDict, total=False):
    """How an MQTT client connects, beyond its URL (every MQTT transport takes these as
    keyword arguments).

    ``username``, ``password``: credentials (override those in the URL). ``tls``: ``True``
    for TLS with the system's trust store, or an ``ssl.SSLContext``. ``ca_file``: a PEM file
    of the certificate authorities to trust instead of the system's (turns TLS on);
    ``cert_file`` (with ``key_file``, unless the key is in the same file): a client
    certificate to present. ``client_id``: the MQTT
    client identifier (the broker assigns one by default; two clients with one identifier
    knock each other off the broker). ``keepalive``: seconds between keepalive pings (30),
    about how long a silently vanished broker (no TCP close) takes to be noticed.
    ``clean_session``: ``False`` asks for a persistent session (it needs ``client_id``): the
    broker keeps the client's subscriptions and holds the QoS 1/2 messages published while it
    is away, until it comes back with the same identifier (a broker without persistence
    forgets them when it restarts); the default is a clean session.
    """

    username: str | None
    password: str | None
    tls: bool | ssl.SSLContext
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    client_id: str | None
    keepalive: int
    clean_session: bool | None


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where and how an MQTT client connects: a parsed URL with its options applied."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls_context: ssl.SSLContext | None
    redacted: str
    client_id: str | None = None
    keepalive: int = 30
    clean_session: bool | None = None

    def client_arguments(self) -> dict[str, Any]:
        """The keyword arguments of an ``aiomqtt.Client`` for this address."""
        return {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "identifier": self.client_id,
            "keepalive": self.keepalive,
            "tls_context": self.tls_context,
            "clean_session": self.clean_session,
        }


def tls_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A client TLS context that verifies the broker against ``ca_file`` (PEM; the system's
    trust store if None) and presents the client certificate ``cert_file`` (its key in
    ``key_file``, or in ``cert_file`` itself) if given. Raises
    :class:`~hedger.errors.TransportError` naming the option and the file that cannot be read
    or used (its path, never its content)."""
    if key_file is not None and cert_file is None:
        raise TransportError("mqtt", "", "key_file needs cert_file")
    for name, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path is not None:
            _check_readable(name, path)
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError):
        raise TransportError(
            "mqtt", "", f"ca_file {ca_file!r} cannot be used: not a PEM file of certificates"
        ) from None
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError):
            used = f" with key_file {key_file!r}" if key_file is not None else ""
            raise TransportError(
                "mqtt",
                "",
                f"cert_file {cert_file!r} cannot be used{used}: not a PEM certificate and its key",
            ) from None
    return context


def _check_readable(name: str, path: str) -> None:
    try:
        with open(path, "rb") as file:
            file.read(1)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise TransportError("mqtt", "", f"{name} {path!r} cannot be read: {why}") from None


def broker_address(url: str, **options: Unpack[ClientOptions]) -> BrokerAddress:
    """Parse ``url`` (:func:`parse_broker_url`) and apply ``options``: explicit credentials
    override those in the URL, and ``tls`` (or ``ca_file``) turns TLS on for an ``mqtt://``
    URL too (on port 8883 unless the URL gives one). Raises
    :class:`~hedger.errors.TransportError`."""
    parsed = parse_broker_url(url)
    tls = options.get("tls", False)
    username, password = options.get("username"), options.get("password")
    ca_file, cert_file = options.get("ca_file"), options.get("cert_file")
    key_file = options.get("key_file")
    context: ssl.SSLContext | None = None
    if isinstance(tls, ssl.SSLContext):
        context = tls
    elif tls or parsed.tls or any(f is not None for f in (ca_file, cert_file, key_file)):
        try:
            context = tls_context(ca_file, cert_file, key_file)
        except TransportError as exc:
            raise TransportError("mqtt", parsed.redacted, exc.problem) from None
    user = username if username is not None else parsed.username
    secret = password if password is not None else parsed.password
    port = parsed.port
    clean_session = options.get("clean_session")
    if clean_session is False and not options.get("client_id"):
        problem = "a persistent session (clean_session false) needs a client_id"
        raise TransportError("mqtt", parsed.redacted, problem)
    if context is not None and urlsplit(url.strip()).port is None:
        port = SCHEMES["mqtts"]
    shown = BrokerUrl("mqtts" if context is not None else "mqtt", parsed.host, port, user, secret)
    return BrokerAddress(
        parsed.host,
        port,
        user,
        secret,
        context,
        shown.redacted,
        options.get("client_id"),
        options.get("keepalive", 30),
        clean_session,
    )
