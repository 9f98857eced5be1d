# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal, standard-library-only gRPC client for unary calls over a unix socket.

Managed nodes may have nothing but ``python3`` (no grpcio), yet deciding whether a socket
really serves the CRI needs a gRPC call. gRPC runs on HTTP/2 with a cleartext "prior
knowledge" connection, so one unary call is:

* client connection preface, a SETTINGS frame and a connection WINDOW_UPDATE;
* a HEADERS frame (HPACK, every field sent as a literal without indexing);
* a DATA frame carrying the length-prefixed protobuf request, with END_STREAM;
* then reading frames until the stream ends: response HEADERS, DATA (the response
  message) and trailers (``grpc-status``, ``grpc-message``).

The answer is decoded with the HPACK decoder of ``_hpack`` and a small protobuf wire-format reader.
Nothing here needs Ansible; the module utils ``_cri_socket`` builds on it.

Bounded against a hostile or broken peer: one ``Deadline`` per call (or per candidate, shared by its
calls) is enforced in connect, every send, every read and the header decoding; a header block may be at
most ``MAX_HEADER_BLOCK`` octets before decoding and ``MAX_HEADER_LIST`` after; the response body at most
``MAX_BODY``; everything read at most ``MAX_RECEIVED``; and at most ``MAX_IDLE_FRAMES`` frames that do not
advance the call (PING, SETTINGS, WINDOW_UPDATE, other streams, ...). Each failure says what the peer did.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from urllib.parse import unquote

from ansible_collections.kubeforge.cluster.plugins.module_utils._hpack import HpackDecoder, HpackError, encode_headers

# --------------------------------------------------------------------------------------
# gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)
GRPC_STATUS_NAMES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
UNIMPLEMENTED = 12


class ProbeError(Exception):
    """Base class: the call could not be made or its answer could not be understood."""

    kind = "error"


class NotFound(ProbeError):
    """No file at the socket path."""

    kind = "missing"


class NotListening(ProbeError):
    """The path exists but nothing accepts connections on it (stale socket, not a socket)."""

    kind = "not_listening"


class AccessDenied(NotListening):
    """The socket exists but this user may not connect to it."""

    kind = "access_denied"


class NotHttp2(ProbeError):
    """Something listens but it does not speak HTTP/2 (so it cannot be gRPC)."""

    kind = "not_http2"

    def __init__(self, message, answer=b""):
        ProbeError.__init__(self, message)
        self.answer = answer


class ProtocolError(ProbeError):
    """The peer speaks HTTP/2 but broke the protocol (bad frame, bad HPACK, GOAWAY ...)."""

    kind = "protocol"


class Timeout(ProbeError):
    """The peer accepted the connection but did not finish the call in time."""

    kind = "timeout"


class Busy(Timeout):
    """A listener that accepts no connection (its backlog is full): a daemon may be there, but it does not answer."""

    kind = "busy"


# --------------------------------------------------------------------------------------
# protobuf wire format (just what the probes need)

def encode_varint(value):
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def decode_varint(data, pos):
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def encode_string_field(number, value):
    raw = value.encode("utf-8") if not isinstance(value, bytes) else value
    return encode_varint((number << 3) | 2) + encode_varint(len(raw)) + raw


def decode_fields(message):
    """Return ``{field number: [values]}``; varints as int, length-delimited as bytes."""
    data = bytearray(message)
    fields = {}
    pos = 0
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = decode_varint(data, pos)
        elif wire == 1:
            value, pos = bytes(data[pos:pos + 8]), pos + 8
        elif wire == 2:
            length, pos = decode_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field %d" % number)
            value, pos = bytes(data[pos:pos + length]), pos + length
        elif wire == 5:
            value, pos = bytes(data[pos:pos + 4]), pos + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        if pos > len(data):
            raise ValueError("truncated field %d" % number)
        fields.setdefault(number, []).append(value)
    return fields


def field_text(fields, number, default=""):
    values = fields.get(number)
    if not values or not isinstance(values[-1], bytes):
        return default
    return values[-1].decode("utf-8", "replace")


# --------------------------------------------------------------------------------------
# HTTP/2 (RFC 9113) framing

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_DATA, FRAME_HEADERS, FRAME_PRIORITY, FRAME_RST_STREAM, FRAME_SETTINGS = 0, 1, 2, 3, 4
FRAME_PUSH_PROMISE, FRAME_PING, FRAME_GOAWAY, FRAME_WINDOW_UPDATE, FRAME_CONTINUATION = 5, 6, 7, 8, 9
FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE", 6: "PING",
               7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
HTTP2_ERROR_NAMES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}
_WINDOW = (1 << 24)
# Limits (a CRI Version answer is a few hundred octets; containerd's filtered plugin list a few KiB).
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE, which we leave at its default: larger frames are a FRAME_SIZE_ERROR
MAX_HEADER_BLOCK = 16384  # raw HPACK octets of one HEADERS + CONTINUATION sequence
MAX_HEADER_LIST = 16384  # decoded, RFC 7541 sizes; announced as SETTINGS_MAX_HEADER_LIST_SIZE
MAX_BODY = 262144  # DATA octets of our stream
MAX_RECEIVED = 1 << 20  # every octet the peer sends during one call
MAX_IDLE_FRAMES = 100  # frames that do not advance the call


def frame(frame_type, flags, stream_id, payload=b""):
    """Serialise one HTTP/2 frame."""
    length = len(payload)
    return struct.pack(">BHBBI", (length >> 16) & 0xFF, length & 0xFFFF, frame_type, flags, stream_id & 0x7FFFFFFF) + payload


def parse_frame_header(header):
    """Return (length, type, flags, stream id) of a 9-octet frame header."""
    high, low, frame_type, flags, stream_id = struct.unpack(">BHBBI", header)
    return (high << 16) | low, frame_type, flags, stream_id & 0x7FFFFFFF


def _strip_padding(flags, payload, frame_type):
    data = bytearray(payload)
    start = 0
    end = len(data)
    if flags & FLAG_PADDED:
        if not data:
            raise ProtocolError("padded frame without pad length")
        end -= data[0]
        start = 1
    if frame_type == FRAME_HEADERS and flags & FLAG_PRIORITY:
        start += 5
    if end < start:
        raise ProtocolError("frame padding longer than its payload")
    return bytes(data[start:end])


def grpc_message(payload):
    """A gRPC length-prefixed message (uncompressed)."""
    return struct.pack(">BI", 0, len(payload)) + payload


def split_grpc_messages(data):
    """Split a DATA stream into gRPC messages; reject compressed or truncated ones."""
    messages = []
    pos = 0
    while pos < len(data):
        if pos + 5 > len(data):
            raise ProtocolError("truncated gRPC message prefix")
        compressed, length = struct.unpack(">BI", data[pos:pos + 5])
        if compressed:
            raise ProtocolError("compressed gRPC message (none was offered)")
        if pos + 5 + length > len(data):
            raise ProtocolError("truncated gRPC message")
        messages.append(data[pos + 5:pos + 5 + length])
        pos += 5 + length
    return messages


class GrpcResult:
    """What one unary call returned."""

    def __init__(self, method, headers, trailers, messages, elapsed):
        self.method = method
        self.headers = headers
        self.trailers = trailers
        self.messages = messages
        self.elapsed = elapsed
        merged = dict(headers)
        merged.update(trailers)
        self.http_status = merged.get(":status")
        status = merged.get("grpc-status")
        try:
            self.status = int(status) if status is not None else None
        except ValueError:
            self.status = None
        message = merged.get("grpc-message", "")
        self.message = unquote(message)
        self.content_type = merged.get("content-type", "")

    @property
    def ok(self):
        return self.status == 0 and bool(self.messages)

    @property
    def status_name(self):
        if self.status is None:
            return "no grpc-status"
        return GRPC_STATUS_NAMES.get(self.status, str(self.status))

    def describe(self):
        """``UNIMPLEMENTED: unknown service runtime.v1.RuntimeService`` and the like."""
        if self.status is None:
            return "HTTP status %s without grpc-status (content-type %r)" % (self.http_status, self.content_type)
        text = "%s (%d)" % (self.status_name, self.status)
        return "%s: %s" % (text, self.message) if self.message else text

    @property
    def message_fields(self):
        return decode_fields(self.messages[0]) if self.messages else {}


class Deadline:
    """The one point in time by which a probe must be done; shared by the calls made for one candidate."""

    def __init__(self, seconds):
        self.seconds = float(seconds)
        self.expires = time.monotonic() + self.seconds

    def remaining(self):
        return self.expires - time.monotonic()

    def expired(self):
        return self.remaining() <= 0


def _describe_answer(answer):
    """A short printable rendering of what a non-HTTP/2 peer sent."""
    text = bytes(answer[:80]).decode("latin-1")
    printable = "".join(ch if 32 <= ord(ch) < 127 else "." for ch in text.split("\r\n", 1)[0].split("\n", 1)[0])
    return printable.strip() or repr(bytes(answer[:16]))


def _octets(count):
    return "%d octets" % count if count < 10240 else "%d KiB" % (count // 1024)


class _Connection:
    """One client connection: every socket operation is bounded by the deadline, every octet counted."""

    def __init__(self, path, deadline):
        self.path = path
        self.deadline = deadline
        self.buffer = bytearray()
        self.sock = None
        self.first_frame = True
        self.received = 0
        self.frames = {}  # frame type -> count, for the account of what the peer did

    # what the peer did, for messages ----------------------------------------------------
    def activity(self):
        if not self.received:
            return "the peer accepted the connection but sent nothing"
        counts = ", ".join("%s x%d" % (FRAME_NAMES.get(t, "type %d" % t), n) for t, n in sorted(self.frames.items()))
        text = "the peer sent %s in %d frames (%s)" % (_octets(self.received), sum(self.frames.values()), counts or "none complete")
        if self.buffer:
            text += " and stopped %s into the next frame" % _octets(len(self.buffer))
        return text

    def timeout(self, doing=""):
        return Timeout("no complete answer within %.1fs%s: %s" % (self.deadline.seconds, doing, self.activity()))

    def _remaining(self, doing=""):
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise self.timeout(doing)
        return remaining

    # socket -------------------------------------------------------------------------------
    def connect(self):
        if not os.path.lexists(self.path):
            raise NotFound("no such file")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._remaining())
            sock.connect(self.path)
        except socket.timeout:
            sock.close()
            raise Busy("connect did not complete within %.1fs (the listener's backlog is full: it accepts no "
                       "connections)" % self.deadline.seconds) from None
        except Timeout:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            code = getattr(exc, "errno", None)
            if code == errno.ECONNREFUSED:
                raise NotListening("connection refused: no process listens on this socket (stale socket file)") from None
            if code == errno.ENOENT:
                raise NotFound("no such file") from None
            if code in (errno.ENOTSOCK, getattr(errno, "EPROTOTYPE", -1)):
                raise NotListening("not a unix socket") from None
            if code in (errno.EACCES, errno.EPERM):
                raise AccessDenied("permission denied connecting to the socket (run as root / become: true)") from None
            if code == errno.EAGAIN:
                raise Busy("connect failed: the listener's backlog is full (it accepts no connections)") from None
            raise NotListening("connect failed: %s" % (os.strerror(code) if code else exc)) from None
        self.sock = sock

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def send(self, data):
        try:
            self.sock.settimeout(self._remaining(" (sending)"))
            self.sock.sendall(data)
        except socket.timeout:
            raise Timeout("could not send %s within %.1fs: the peer does not read what it is sent (%s)"
                          % (_octets(len(data)), self.deadline.seconds, self.activity())) from None
        except OSError as exc:
            if self.first_frame:
                raise NotHttp2("the peer closed the connection before the gRPC request was sent (%s)" % exc) from None
            raise ProtocolError("sending failed: %s" % exc) from None

    def _recv_exact(self, count):
        while len(self.buffer) < count:
            self.sock.settimeout(self._remaining())
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise self.timeout() from None
            except OSError as exc:
                if self.first_frame:
                    raise NotHttp2("the peer reset the connection without an HTTP/2 answer (%s)" % exc, bytes(self.buffer)) from None
                raise ProtocolError("connection error: %s; %s" % (exc, self.activity())) from None
            if not chunk:
                if self.first_frame:
                    if self.buffer:
                        raise NotHttp2("answered %r, not HTTP/2" % _describe_answer(self.buffer), bytes(self.buffer))
                    raise NotHttp2("closed the connection without an HTTP/2 answer")
                raise ProtocolError("the peer closed the connection in the middle of the call: %s" % self.activity())
            self.received += len(chunk)
            self.buffer += chunk
            if self.received > MAX_RECEIVED:
                raise ProtocolError("the peer sent more than %s without completing the call: %s"
                                    % (_octets(MAX_RECEIVED), self.activity()))
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_frame(self):
        header = self._recv_exact(9)
        length, frame_type, flags, stream_id = parse_frame_header(header)
        if self.first_frame:
            # RFC 9113 3.4: the server preface is a SETTINGS frame on stream 0.
            if frame_type != FRAME_SETTINGS or stream_id != 0 or length % 6 or length > 1024:
                answer = header + bytes(self.buffer)
                try:
                    self.sock.settimeout(max(0.001, min(0.05, self.deadline.remaining())))
                    answer += self.sock.recv(256)
                except OSError:
                    pass
                raise NotHttp2("answered %r, not an HTTP/2 server preface" % _describe_answer(answer), answer)
            self.first_frame = False
        if length > MAX_FRAME:
            raise ProtocolError("the peer sent a %s frame of %d octets, above the %d allowed (FRAME_SIZE_ERROR)"
                                % (FRAME_NAMES.get(frame_type, "type %d" % frame_type), length, MAX_FRAME))
        payload = self._recv_exact(length) if length else b""
        self.frames[frame_type] = self.frames.get(frame_type, 0) + 1
        return frame_type, flags, stream_id, payload


def check_listening(path, timeout=2.0, deadline=None):
    """Connect to the unix socket ``path`` and hang up; raise like :func:`grpc_unary` when that fails."""
    conn = _Connection(path, deadline or Deadline(timeout))
    conn.connect()
    conn.close()


def _request(method, authority, request):
    settings = (struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0) + struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, _WINDOW)
                + struct.pack(">HI", SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST))
    headers = encode_headers([
        (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers"),
        ("user-agent", "kubeforge-cri-probe/1.0"),
    ])
    return (PREFACE
            + frame(FRAME_SETTINGS, 0, 0, settings)
            + frame(FRAME_WINDOW_UPDATE, 0, 0, struct.pack(">I", _WINDOW - 65535))
            + frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, headers)
            + frame(FRAME_DATA, FLAG_END_STREAM, 1, grpc_message(request)))


def grpc_unary(path, method, request=b"", timeout=2.0, authority="localhost", deadline=None):
    """Make one unary gRPC call on the unix socket ``path``; return a :class:`GrpcResult`.

    ``method`` is ``/package.Service/Method``; ``request`` the serialised protobuf message. The call ends by
    ``deadline`` (a :class:`Deadline`, shared with other calls), or ``timeout`` seconds from now.
    Raises :class:`NotFound`, :class:`NotListening`, :class:`NotHttp2`, :class:`Timeout` or
    :class:`ProtocolError` when no gRPC answer could be had.
    """
    started = time.monotonic()
    conn = _Connection(path, deadline or Deadline(timeout))
    conn.connect()
    try:
        conn.send(_request(method, authority, request))
        blocks = _read_answer(conn)
    finally:
        conn.close()
    headers, trailers, body = blocks
    return GrpcResult(method, headers, trailers, split_grpc_messages(body), time.monotonic() - started)


def _read_answer(conn):
    """Read frames until stream 1 ends; return ``(headers, trailers, body)``."""
    decoder = HpackDecoder(max_list_size=MAX_HEADER_LIST)
    blocks = []  # decoded header blocks of stream 1, in order
    pending = None  # header block fragments waiting for END_HEADERS
    pending_frames = 0
    pending_end_stream = False
    body = bytearray()
    idle = {}
    while True:
        if conn.deadline.expired():
            raise conn.timeout()
        frame_type, flags, stream_id, payload = conn.read_frame()
        if pending is not None and frame_type != FRAME_CONTINUATION:
            raise ProtocolError("header block interrupted by a %s frame" % FRAME_NAMES.get(frame_type, "type %d" % frame_type))
        advances = stream_id == 1 and frame_type in (FRAME_HEADERS, FRAME_CONTINUATION, FRAME_DATA, FRAME_RST_STREAM)
        if frame_type == FRAME_DATA and not payload and not flags & FLAG_END_STREAM:
            advances = False
        if not advances and frame_type != FRAME_GOAWAY:
            idle[frame_type] = idle.get(frame_type, 0) + 1
            if sum(idle.values()) > MAX_IDLE_FRAMES:
                raise ProtocolError("the peer sent more than %d frames that do not advance the call (%s): a flood"
                                    % (MAX_IDLE_FRAMES, ", ".join("%s x%d" % (FRAME_NAMES.get(t, "type %d" % t), n)
                                                                  for t, n in sorted(idle.items()))))
        if frame_type == FRAME_SETTINGS:
            if not flags & FLAG_ACK:
                conn.send(frame(FRAME_SETTINGS, FLAG_ACK, 0))
            continue
        if frame_type == FRAME_PING:
            if not flags & FLAG_ACK:
                conn.send(frame(FRAME_PING, FLAG_ACK, 0, payload[:8]))
            continue
        if frame_type == FRAME_GOAWAY:
            last_stream, code = struct.unpack(">II", payload[:8]) if len(payload) >= 8 else (0, 0)
            debug = payload[8:200].decode("utf-8", "replace")
            if (last_stream & 0x7FFFFFFF) >= 1 and code == 0:
                continue  # graceful shutdown after our stream: keep reading it
            raise ProtocolError("GOAWAY %s%s" % (HTTP2_ERROR_NAMES.get(code, code), (": " + debug) if debug else ""))
        if frame_type in (FRAME_WINDOW_UPDATE, FRAME_PRIORITY) or stream_id not in (0, 1):
            continue
        if frame_type == FRAME_RST_STREAM:
            code = struct.unpack(">I", payload[:4])[0] if len(payload) >= 4 else 0
            raise ProtocolError("the server reset the stream (%s)" % HTTP2_ERROR_NAMES.get(code, code))
        if frame_type == FRAME_PUSH_PROMISE:
            raise ProtocolError("PUSH_PROMISE although push was disabled")
        if frame_type == FRAME_HEADERS:
            if len(blocks) >= 2:
                raise ProtocolError("the peer sent a third header block on one stream (gRPC has headers and trailers only)")
            pending = bytearray(_strip_padding(flags, payload, frame_type))
            pending_frames = 1
            pending_end_stream = bool(flags & FLAG_END_STREAM)
        elif frame_type == FRAME_CONTINUATION:
            if pending is None:
                raise ProtocolError("CONTINUATION without HEADERS")
            pending += payload
            pending_frames += 1
        elif frame_type == FRAME_DATA:
            body += _strip_padding(flags, payload, frame_type)
            if len(body) > MAX_BODY:
                raise ProtocolError("the answer's body exceeds %s (%s): not a CRI Version answer"
                                    % (_octets(MAX_BODY), conn.activity()))
            if flags & FLAG_END_STREAM:
                break
            continue
        else:
            continue  # unknown frame types are ignored (RFC 9113 4.1)
        if len(pending) > MAX_HEADER_BLOCK:
            raise ProtocolError("the peer's header block exceeds %d octets (HEADERS and %d CONTINUATION frames so far): "
                                "a header flood" % (MAX_HEADER_BLOCK, pending_frames - 1))
        if flags & FLAG_END_HEADERS:
            try:
                blocks.append(decoder.decode(pending, conn.deadline))
            except HpackError as exc:
                if conn.deadline.expired():
                    raise conn.timeout(" (decoding headers)") from None
                raise ProtocolError("bad header block: %s" % exc) from None
            pending = None
            if pending_end_stream:
                break
    response_headers = blocks[0] if blocks else []
    trailers = blocks[-1] if len(blocks) > 1 else []
    if len(blocks) == 1 and not body:
        trailers = blocks[0]  # "trailers-only" answer (typical for errors)
    return response_headers, trailers, bytes(body)
