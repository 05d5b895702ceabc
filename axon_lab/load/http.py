"""A small asyncio HTTP/1.1 keep-alive client built for load generation, with per-request timestamps."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl as _ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from axon_lab.errors import ConfigError

_now = time.perf_counter_ns

# Outcome codes, stored per record (see ``records.OUTCOMES`` for their names).
OK, HTTP_ERROR, TIMEOUT, CONNECT_ERROR, IO_ERROR, PROTOCOL_ERROR, INTERRUPTED, DROPPED = range(8)

_MAX_HEAD = 64 * 1024  # a response head larger than this is a protocol error
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, host, port and the path prefix of a base URL.

    Parameters
    ----------
    scheme
        ``http`` or ``https``.
    host
        Host name or IP literal (IPv6 without brackets).
    port
        TCP port.
    path
        Path and query of the URL (``/`` when empty).
    """

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse ``http[s]://host[:port][/path][?query]``; raises :class:`ConfigError` otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"not an http(s) URL: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError(f"bad port in URL {url!r}") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, path)

    @property
    def host_header(self) -> str:
        """The ``Host`` header value (port omitted when it is the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``scheme://host[:port]`` without the path."""
        return f"{self.scheme}://{self.host_header}"

    @property
    def url(self) -> str:
        """The full URL."""
        return self.base_url + self.path

    def with_path(self, path: str) -> Endpoint:
        """The same server with another path."""
        return Endpoint(
            self.scheme, self.host, self.port, path if path.startswith("/") else "/" + path
        )


def resolved_addresses(host: str) -> list[str]:
    """IP addresses ``host`` resolves to (the literal itself for an IP address)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    if host == "localhost":
        return True
    try:
        addrs = resolved_addresses(host)
    except ConfigError:  # unresolvable: certainly not known to be loopback
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def build_request(
    method: str,
    target: Endpoint,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
) -> bytes:
    """Serialise one HTTP/1.1 keep-alive request to bytes (built once, sent many times).

    Parameters
    ----------
    method
        HTTP method (upper-cased).
    target
        Server and path.
    headers
        Extra headers; ``Host``, ``Content-Length`` and ``Connection`` are set here.
    body
        Request body; a ``str`` is UTF-8 encoded. JSON bodies get ``Content-Type:
        application/json`` unless a content type is given.
    """
    method = method.upper()
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = {
        "host": ("Host", target.host_header),
        "user-agent": ("User-Agent", "axon-lab-load/1"),
        "accept": ("Accept", "*/*"),
    }
    for k, v in (headers or {}).items():
        if "\r" in k or "\n" in k or "\r" in str(v) or "\n" in str(v):
            raise ConfigError(f"header {k!r} contains a line break")
        hdrs[k.lower()] = (k, str(v))
    hdrs["connection"] = ("Connection", "keep-alive")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        body = body or b""
        hdrs["content-length"] = ("Content-Length", str(len(body)))
        if "content-type" not in hdrs and body[:1] in (b"{", b"["):
            hdrs["content-type"] = ("Content-Type", "application/json")
    head = f"{method} {target.path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.values()
    )
    return head.encode("latin-1") + b"\r\n" + (body or b"")


class Exchange:
    """One request/response exchange and its timestamps (``perf_counter_ns``, absolute).

    The engine fills ``seq``, ``intended_ns``, ``payload`` and ``queued``; the connection fills
    ``sent_ns``, ``first_ns``, ``end_ns``, ``status``, ``headers``, ``body``, ``nbytes`` and
    ``outcome``/``error``.
    """

    __slots__ = (
        "seq",
        "stage",
        "intended_ns",
        "sent_ns",
        "first_ns",
        "end_ns",
        "connect_ns",
        "status",
        "headers",
        "body",
        "nbytes",
        "outcome",
        "error",
        "conn_id",
        "queued",
        "payload",
        "retried",
        "head_method",
        "events",
        "sse_complete",
    )

    def __init__(self, seq: int, intended_ns: int, payload: int, stage: int = 0) -> None:
        self.seq = seq
        self.stage = stage
        self.intended_ns = intended_ns
        self.sent_ns = -1
        self.first_ns = -1
        self.end_ns = -1
        self.connect_ns = -1
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: bytes = b""
        self.nbytes = 0
        self.outcome = OK
        self.error: str | None = None
        self.conn_id = -1
        self.queued = False
        self.payload = payload
        self.retried = False
        self.head_method = False
        #: Server-Sent Events seen (``(perf_counter_ns, type)``) when the connection records them.
        self.events: list[tuple[int, str]] | None = None
        #: The ``complete`` event's JSON (its ``data`` may carry the stage latencies).
        self.sse_complete: bytes | None = None


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time (no pipelining).

    ``on_done(conn, exchange)`` is called exactly once per sent exchange, from the event loop,
    when the response is complete or the exchange failed.

    Parameters
    ----------
    conn_id
        A number for the records.
    on_done
        Completion callback.
    on_lost
        Called with the connection when the transport is closed (by either side).
    keep_body
        Keep response bodies (needed by body/JSON checks); otherwise they are only counted.
    keep_error_body
        Keep the bodies of error responses (status >= 400) only: their error codes name a
        refusal, and successful bodies stay uncopied on the hot path.
    sse
        Time each Server-Sent Event of a ``text/event-stream`` response as it arrives
        (:attr:`Exchange.events`: the time its last byte was read, and its ``type``).
    """

    def __init__(
        self,
        conn_id: int,
        on_done: Callable[[HttpConnection, Exchange], None],
        on_lost: Callable[[HttpConnection], None],
        *,
        keep_body: bool = False,
        keep_error_body: bool = False,
        sse: bool = False,
    ) -> None:
        self.conn_id = conn_id
        self.on_done = on_done
        self.on_lost = on_lost
        self.keep_body = keep_body
        self.keep_error_body = keep_error_body
        self.sse = sse
        self.transport: asyncio.Transport | None = None
        self.current: Exchange | None = None
        self.closed = False
        self.reusable = True
        self.requests = 0
        self.last_used_ns = _now()
        self.connected_ns = -1
        self._buf = bytearray()
        self._reset_parser()

    # -- parser state -------------------------------------------------------------------
    def _reset_parser(self) -> None:
        self._head_done = False
        self._body_start = 0
        self._length = -1  # Content-Length, -1 unknown
        self._chunked = False
        self._until_close = False
        self._chunk_pos = 0
        self._chunks: list[bytes] = []
        self._sse_buf = bytearray()

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connected_ns = _now()

    def send(self, ex: Exchange, payload: bytes) -> None:
        """Write the request of ``ex`` (one in flight at a time)."""
        assert self.current is None and self.transport is not None
        self.current = ex
        ex.conn_id = self.conn_id
        self._buf.clear()
        self._reset_parser()
        ex.head_method = payload.startswith(b"HEAD ")
        ex.sent_ns = _now()
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        ex = self.current
        if ex is None:  # bytes nobody asked for: the server broke the protocol
            self.reusable = False
            self.close()
            return
        if ex.first_ns < 0:
            ex.first_ns = _now()
        self._buf += data
        try:
            self._parse(ex)
        except ValueError as exc:
            self._fail(PROTOCOL_ERROR, f"protocol: {exc}")
            self.close()

    def eof_received(self) -> bool | None:
        ex = self.current
        if ex is not None and self._head_done and self._until_close:
            self.reusable = False
            self._finish(
                ex, bytes(self._buf[self._body_start :]) if self._keep(ex) else b"", len(self._buf)
            )
        self.reusable = False
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.current
        if ex is not None:
            if self._head_done and self._until_close:
                self._finish(
                    ex,
                    bytes(self._buf[self._body_start :]) if self._keep(ex) else b"",
                    len(self._buf),
                )
            else:
                why = f"{type(exc).__name__}: {exc}" if exc else "connection closed by server"
                self._fail(IO_ERROR, why)
        self.on_lost(self)

    # -- helpers ----------------------------------------------------------------------------
    def _keep(self, ex: Exchange) -> bool:
        """Whether the body of ``ex`` is kept (all bodies, or those of error responses)."""
        return self.keep_body or (self.keep_error_body and ex.status >= 400)

    def close(self) -> None:
        """Close the transport (idempotent)."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self, outcome: int, error: str) -> None:
        """Fail the in-flight exchange (timeout, interrupt) and drop the connection."""
        self._fail(outcome, error)
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _fail(self, outcome: int, error: str) -> None:
        ex = self.current
        if ex is None:
            return
        self.current = None
        ex.end_ns = _now()
        ex.outcome = outcome
        ex.error = error
        ex.nbytes = len(self._buf)
        self.reusable = False
        self.on_done(self, ex)

    def _finish(self, ex: Exchange, body: bytes, total: int) -> None:
        """The response is complete: stamp it, free the connection, report it."""
        ex.end_ns = _now()
        ex.body = body
        ex.nbytes = total
        ex.outcome = OK if ex.status < 400 else HTTP_ERROR
        self.current = None
        self.requests += 1
        self.last_used_ns = ex.end_ns
        if not self.reusable:
            self.close()
        self.on_done(self, ex)

    def _parse(self, ex: Exchange) -> None:
        buf = self._buf
        while not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ValueError("response head too large")
                return
            self._parse_head(ex, bytes(buf[:end]))
            self._body_start = end + 4
            if 100 <= ex.status < 200:  # interim response (100 Continue...): skip it
                del buf[: self._body_start]
                self._body_start = 0
                ex.headers = {}
                continue
            self._head_done = True
        if self._chunked:
            self._parse_chunks(ex)
            return
        if self._length >= 0:
            start = self._body_start
            if len(buf) - start >= self._length:
                body = bytes(buf[start : start + self._length]) if self._keep(ex) else b""
                self._finish(ex, body, start + self._length)
            return
        # no length, not chunked: the body runs until the server closes (eof_received).

    def _parse_head(self, ex: Exchange, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12:
            raise ValueError(f"bad status line {status_line[:40]!r}")
        http10 = status_line[5:8] == b"1.0"
        try:
            ex.status = int(status_line[9:12])
        except ValueError:
            raise ValueError(f"bad status line {status_line[:40]!r}") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("header line without colon")
            key = name.strip().lower().decode("latin-1")
            val = value.strip().decode("latin-1")
            # Repeated headers are joined as RFC 9110 allows for list-valued fields.
            headers[key] = f"{headers[key]}, {val}" if key in headers else val
        ex.headers = headers
        conn = headers.get("connection", "").lower()
        if "close" in conn or (http10 and "keep-alive" not in conn):
            self.reusable = False
        te = headers.get("transfer-encoding", "").lower()
        if self.sse and "text/event-stream" in headers.get("content-type", ""):
            ex.events = []
        if ex.head_method or ex.status in _NO_BODY_STATUS or 100 <= ex.status < 200:
            self._length = 0
        elif "chunked" in te:
            self._chunked = True
            self._chunk_pos = 0
        elif "content-length" in headers:
            try:
                self._length = int(headers["content-length"].split(",")[0])
            except ValueError:
                raise ValueError("bad Content-Length") from None
        else:
            self._until_close = True
            self.reusable = False

    def _parse_chunks(self, ex: Exchange) -> None:
        buf = self._buf
        pos = self._body_start + self._chunk_pos
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size_field = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise ValueError(f"bad chunk size {size_field[:20]!r}") from None
            if size == 0:
                # Trailer section ends with an empty line.
                tend = buf.find(b"\r\n\r\n", eol)
                if eol + 2 <= len(buf) and buf[eol : eol + 4] == b"\r\n\r\n":
                    tend = eol
                if tend < 0:
                    break
                self._finish(ex, b"".join(self._chunks), tend + 4)
                return
            data_end = eol + 2 + size
            if len(buf) < data_end + 2:
                break
            if self._keep(ex):
                self._chunks.append(bytes(buf[eol + 2 : data_end]))
            if ex.events is not None:
                self._sse_feed(ex, buf[eol + 2 : data_end])
            pos = data_end + 2
        self._chunk_pos = pos - self._body_start

    def _sse_feed(self, ex: Exchange, data: bytes | bytearray) -> None:
        """Split the stream into events (blank-line separated) and stamp each complete one."""
        sb = self._sse_buf
        sb += data
        now = _now()
        events = ex.events
        assert events is not None
        while True:
            end = sb.find(b"\n\n")
            if end < 0:
                return
            block = bytes(sb[:end])
            del sb[: end + 2]
            if b"[DONE]" in block and block.strip().endswith(b"[DONE]"):
                events.append((now, "[DONE]"))
                continue
            m = _SSE_TYPE.search(block)
            kind = m.group(1).decode("ascii", "replace") if m else "message"
            events.append((now, kind))
            if kind == "complete":
                ex.sse_complete = block


#: The event's ``type`` field (the first key of the real Axon API's JSON events).
_SSE_TYPE = re.compile(rb'"type"\s*:\s*"([^"]{1,40})"')


async def open_connection(
    target: Endpoint,
    conn_id: int,
    on_done: Callable[[HttpConnection, Exchange], None],
    on_lost: Callable[[HttpConnection], None],
    *,
    keep_body: bool = False,
    ssl_context: _ssl.SSLContext | None = None,
    timeout_s: float = 10.0,
    sse: bool = False,
    keep_error_body: bool = False,
) -> HttpConnection:
    """Open one connection to ``target`` (TCP_NODELAY is asyncio's default)."""
    loop = asyncio.get_running_loop()
    ssl_arg: _ssl.SSLContext | None = None
    if target.scheme == "https":
        ssl_arg = ssl_context or _ssl.create_default_context()
    _, proto = await asyncio.wait_for(
        loop.create_connection(
            lambda: HttpConnection(
                conn_id,
                on_done,
                on_lost,
                keep_body=keep_body,
                keep_error_body=keep_error_body,
                sse=sse,
            ),
            target.host,
            target.port,
            ssl=ssl_arg,
            server_hostname=target.host if ssl_arg else None,
        ),
        timeout_s,
    )
    return proto


def header_lines(pairs: Iterable[str]) -> dict[str, str]:
    """Parse ``"Name: value"`` strings (curl/autocannon ``-H``) into a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"header must be 'Name: value', got {pair!r}")
        out[name.strip()] = value.strip()
    return out
