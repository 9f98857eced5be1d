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

The answer is decoded with a complete HPACK decoder (static and dynamic table, Huffman
strings: Go's gRPC servers use both) and a small protobuf wire-format reader.
Nothing here needs Ansible; the module utils ``_cri_socket`` builds on it.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from urllib.parse import unquote

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


# --------------------------------------------------------------------------------------
# HPACK (RFC 7541)

# Appendix A: the static table (index 1..61).
HPACK_STATIC_TABLE = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)

# Appendix B: the Huffman code is canonical (codes of one length are consecutive and ordered
# by symbol), so the bit length of each of the 257 symbols (0..255 and EOS) defines it.
# One character per symbol: chr(ord("A") + length - 5).
_HUFFMAN_LENGTHS = (
    "ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHF"
    "IBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIX"
    "PRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRS"
    "VVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWV"
    "Z"
)
HUFFMAN_EOS = 256


def _build_huffman_codes():
    lengths = [ord(c) - ord("A") + 5 for c in _HUFFMAN_LENGTHS]
    order = sorted(range(len(lengths)), key=lambda sym: (lengths[sym], sym))
    codes = [0] * len(lengths)
    code = 0
    previous = lengths[order[0]]
    for position, sym in enumerate(order):
        if position:
            code = (code + 1) << (lengths[sym] - previous)
        previous = lengths[sym]
        codes[sym] = code
    return codes, lengths


HUFFMAN_CODES, HUFFMAN_CODE_LENGTHS = _build_huffman_codes()
_HUFFMAN_DECODE = {(HUFFMAN_CODE_LENGTHS[s], HUFFMAN_CODES[s]): s for s in range(257)}


class HpackError(ProtocolError):
    """A header block that does not decode."""


def huffman_encode(data):
    """Huffman-encode ``data`` (bytes), padding the last octet with the EOS prefix (ones)."""
    acc = 0
    bits = 0
    out = bytearray()
    for byte in bytearray(data):
        acc = (acc << HUFFMAN_CODE_LENGTHS[byte]) | HUFFMAN_CODES[byte]
        bits += HUFFMAN_CODE_LENGTHS[byte]
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1
    if bits:
        out.append(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xFF)
    return bytes(out)


def huffman_decode(data):
    """Decode a Huffman-coded HPACK string; reject EOS in the data and bad padding."""
    out = bytearray()
    code = 0
    length = 0
    for byte in bytearray(data):
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            sym = _HUFFMAN_DECODE.get((length, code))
            if sym is not None:
                if sym == HUFFMAN_EOS:
                    raise HpackError("Huffman string contains the EOS symbol")
                out.append(sym)
                code = 0
                length = 0
            elif length > 30:
                raise HpackError("invalid Huffman code")
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


def hpack_encode_integer(value, prefix_bits, first_byte_flags=0):
    """Encode an HPACK integer with an N-bit prefix (RFC 7541 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes(bytearray([first_byte_flags | value]))
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_decode_integer(data, pos, prefix_bits):
    """Return (value, next position) of an HPACK integer starting at ``data[pos]``."""
    limit = (1 << prefix_bits) - 1
    if pos >= len(data):
        raise HpackError("truncated integer")
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise HpackError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 28:
            raise HpackError("integer too large")


def hpack_encode_string(value, huffman=False):
    raw = value.encode("utf-8") if not isinstance(value, bytes) else value
    if huffman:
        coded = huffman_encode(raw)
        return hpack_encode_integer(len(coded), 7, 0x80) + coded
    return hpack_encode_integer(len(raw), 7) + raw


def hpack_encode_literal(name, value, huffman=False):
    """A header field as "literal without indexing, new name" (RFC 7541 6.2.2)."""
    return b"\x00" + hpack_encode_string(name, huffman) + hpack_encode_string(value, huffman)


def encode_headers(headers):
    """Encode ``[(name, value), ...]`` as one header block of literals without indexing."""
    return b"".join(hpack_encode_literal(name, value) for name, value in headers)


class HpackDecoder:
    """Header block decoder with the connection's dynamic table (RFC 7541 2.3, 4, 6)."""

    def __init__(self, max_table_size=4096):
        self.max_table_size = max_table_size  # what we allow (SETTINGS_HEADER_TABLE_SIZE)
        self.table_size_limit = max_table_size  # current limit set by the encoder
        self.dynamic = []  # newest first
        self.size = 0

    def _evict(self):
        while self.size > self.table_size_limit and self.dynamic:
            name, value = self.dynamic.pop()
            self.size -= len(name) + len(value) + 32

    def _add(self, name, value):
        self.dynamic.insert(0, (name, value))
        self.size += len(name) + len(value) + 32
        self._evict()

    def _lookup(self, index):
        if index <= 0:
            raise HpackError("header index 0")
        if index <= len(HPACK_STATIC_TABLE):
            name, value = HPACK_STATIC_TABLE[index - 1]
            return name.encode("ascii"), value.encode("ascii")
        dyn = index - len(HPACK_STATIC_TABLE) - 1
        if dyn >= len(self.dynamic):
            raise HpackError("header index %d beyond the dynamic table" % index)
        return self.dynamic[dyn]

    @staticmethod
    def _string(data, pos):
        if pos >= len(data):
            raise HpackError("truncated string")
        huffman = bool(data[pos] & 0x80)
        length, pos = hpack_decode_integer(data, pos, 7)
        if pos + length > len(data):
            raise HpackError("truncated string")
        raw = bytes(data[pos:pos + length])
        return (huffman_decode(raw) if huffman else raw), pos + length

    def decode(self, block):
        """Return the header list ``[(name, value), ...]`` (text) of one complete block."""
        data = bytearray(block)
        pos = 0
        headers = []
        while pos < len(data):
            byte = data[pos]
            if byte & 0x80:  # indexed header field
                index, pos = hpack_decode_integer(data, pos, 7)
                headers.append(self._lookup(index))
                continue
            if byte & 0xE0 == 0x20:  # dynamic table size update
                size, pos = hpack_decode_integer(data, pos, 5)
                if size > self.max_table_size:
                    raise HpackError("table size update %d above the limit %d" % (size, self.max_table_size))
                self.table_size_limit = size
                self._evict()
                continue
            if byte & 0xC0 == 0x40:  # literal with incremental indexing
                index, pos = hpack_decode_integer(data, pos, 6)
                indexing = True
            else:  # literal without indexing (0000) or never indexed (0001)
                index, pos = hpack_decode_integer(data, pos, 4)
                indexing = False
            if index:
                name = self._lookup(index)[0]
            else:
                name, pos = self._string(data, pos)
            value, pos = self._string(data, pos)
            if indexing:
                self._add(name, value)
            headers.append((name, value))
        return [(n.decode("utf-8", "replace"), v.decode("utf-8", "replace")) for n, v in headers]


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
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
HTTP2_ERROR_NAMES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}
_WINDOW = (1 << 24)
_MAX_FRAME = 1 << 20  # we never accept frames above this (the default limit is 16 KiB)


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


def _describe_answer(answer):
    """A short printable rendering of what a non-HTTP/2 peer sent."""
    text = answer[:80].decode("latin-1")
    printable = "".join(ch if 32 <= ord(ch) < 127 else "." for ch in text.split("\r\n")[0].split("\n")[0])
    return printable.strip() or repr(answer[:16])


class _Connection:
    def __init__(self, path, timeout):
        self.path = path
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.buffer = b""
        self.sock = None
        self.first_frame = True

    def connect(self):
        if not os.path.lexists(self.path):
            raise NotFound("no such file")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except socket.timeout:
            sock.close()
            raise Timeout("connect did not complete within %.1fs" % self.timeout) from None
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
            self.sock.sendall(data)
        except OSError as exc:
            if self.first_frame:
                raise NotHttp2("the peer closed the connection before the gRPC request was sent (%s)" % exc) from None
            raise ProtocolError("sending failed: %s" % exc) from None

    def _recv_exact(self, count):
        while len(self.buffer) < count:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout("no complete answer within %.1fs" % self.timeout)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Timeout("no complete answer within %.1fs" % self.timeout) from None
            except OSError as exc:
                chunk = b""
                if self.first_frame:
                    raise NotHttp2("the peer reset the connection without an HTTP/2 answer (%s)" % exc, self.buffer) from None
                raise ProtocolError("connection error: %s" % exc) from None
            if not chunk:
                if self.first_frame:
                    if self.buffer:
                        raise NotHttp2("answered %r, not HTTP/2" % _describe_answer(self.buffer), self.buffer)
                    raise NotHttp2("closed the connection without an HTTP/2 answer")
                raise ProtocolError("the peer closed the connection in the middle of the call")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self):
        header = self._recv_exact(9)
        length, frame_type, flags, stream_id = parse_frame_header(header)
        if self.first_frame:
            # RFC 9113 3.4: the server preface is a SETTINGS frame on stream 0.
            if frame_type != FRAME_SETTINGS or stream_id != 0 or length % 6 or length > 1024:
                self.buffer = header + self.buffer
                try:
                    self.sock.settimeout(0.05)
                    self.buffer += self.sock.recv(256)
                except OSError:
                    pass
                raise NotHttp2("answered %r, not an HTTP/2 server preface" % _describe_answer(self.buffer), self.buffer)
            self.first_frame = False
        if length > _MAX_FRAME:
            raise ProtocolError("frame of %d octets" % length)
        payload = self._recv_exact(length) if length else b""
        return frame_type, flags, stream_id, payload


def check_listening(path, timeout=2.0):
    """Connect to the unix socket ``path`` and hang up; raise like :func:`grpc_unary` when that fails."""
    conn = _Connection(path, timeout)
    conn.connect()
    conn.close()


def grpc_unary(path, method, request=b"", timeout=2.0, authority="localhost"):
    """Make one unary gRPC call on the unix socket ``path``; return a :class:`GrpcResult`.

    ``method`` is ``/package.Service/Method``; ``request`` the serialised protobuf message.
    Raises :class:`NotFound`, :class:`NotListening`, :class:`NotHttp2`, :class:`Timeout` or
    :class:`ProtocolError` when no gRPC answer could be had.
    """
    started = time.monotonic()
    conn = _Connection(path, timeout)
    conn.connect()
    try:
        settings = struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0) + struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, _WINDOW)
        headers = encode_headers([
            (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"),
            ("user-agent", "kubeforge-cri-probe/1.0"),
        ])
        conn.send(
            PREFACE
            + frame(FRAME_SETTINGS, 0, 0, settings)
            + frame(FRAME_WINDOW_UPDATE, 0, 0, struct.pack(">I", _WINDOW - 65535))
            + frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, headers)
            + frame(FRAME_DATA, FLAG_END_STREAM, 1, grpc_message(request))
        )
        decoder = HpackDecoder()
        blocks = []  # decoded header blocks of stream 1, in order
        pending = None  # header block fragments waiting for END_HEADERS
        pending_end_stream = False
        body = b""
        while True:
            frame_type, flags, stream_id, payload = conn.read_frame()
            if pending is not None and frame_type != FRAME_CONTINUATION:
                raise ProtocolError("header block interrupted by a frame of type %d" % frame_type)
            if frame_type == FRAME_SETTINGS:
                if not flags & FLAG_ACK:
                    conn.send(frame(FRAME_SETTINGS, FLAG_ACK, 0))
                continue
            if frame_type == FRAME_PING:
                if not flags & FLAG_ACK:
                    conn.send(frame(FRAME_PING, FLAG_ACK, 0, payload))
                continue
            if frame_type == FRAME_GOAWAY:
                last_stream, code = struct.unpack(">II", payload[:8]) if len(payload) >= 8 else (0, 0)
                debug = payload[8:].decode("utf-8", "replace")
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
                pending = _strip_padding(flags, payload, frame_type)
                pending_end_stream = bool(flags & FLAG_END_STREAM)
            elif frame_type == FRAME_CONTINUATION:
                if pending is None:
                    raise ProtocolError("CONTINUATION without HEADERS")
                pending += payload
            elif frame_type == FRAME_DATA:
                body += _strip_padding(flags, payload, frame_type)
                if flags & FLAG_END_STREAM:
                    break
                continue
            else:
                continue  # unknown frame types are ignored (RFC 9113 4.1)
            if flags & FLAG_END_HEADERS:
                blocks.append(decoder.decode(pending))
                pending = None
                if pending_end_stream:
                    break
    finally:
        conn.close()
    response_headers = blocks[0] if blocks else []
    trailers = blocks[-1] if len(blocks) > 1 else []
    if len(blocks) == 1 and not body:
        trailers = blocks[0]  # "trailers-only" answer (typical for errors)
    return GrpcResult(method, response_headers, trailers, split_grpc_messages(body), time.monotonic() - started)
