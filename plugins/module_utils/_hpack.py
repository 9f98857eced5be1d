# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HPACK (RFC 7541), the header compression of HTTP/2, for the stdlib gRPC probe (``_grpc_probe``).

The decoder is complete (static and dynamic table, Huffman strings: Go's gRPC servers use both) and bounded:
one header block decodes to at most ``max_list_size`` octets (RFC 7541 section 4.1 sizes: name + value + 32
per field, what SETTINGS_MAX_HEADER_LIST_SIZE limits), and a ``deadline`` is checked between fields, so a peer
cannot keep the probe decoding. The encoder writes literals only (what a client request needs).
"""

from __future__ import annotations

DEFAULT_MAX_HEADER_LIST_SIZE = 16384


class HpackError(ValueError):
    """A header block that does not decode, or decodes to more than allowed."""


# RFC 7541 Appendix A: the static table (index 1..61).
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


def hpack_encode_string(value):
    """A string literal without Huffman coding (RFC 7541 5.2)."""
    raw = value.encode("utf-8") if not isinstance(value, bytes) else value
    return hpack_encode_integer(len(raw), 7) + raw


def hpack_encode_literal(name, value):
    """A header field as "literal without indexing, new name" (RFC 7541 6.2.2)."""
    return b"\x00" + hpack_encode_string(name) + hpack_encode_string(value)


def encode_headers(headers):
    """Encode ``[(name, value), ...]`` as one header block of literals without indexing."""
    return b"".join(hpack_encode_literal(name, value) for name, value in headers)


class HpackDecoder:
    """Header block decoder with the connection's dynamic table (RFC 7541 2.3, 4, 6)."""

    def __init__(self, max_table_size=4096, max_list_size=DEFAULT_MAX_HEADER_LIST_SIZE):
        self.max_table_size = max_table_size  # what we allow (SETTINGS_HEADER_TABLE_SIZE)
        self.table_size_limit = max_table_size  # current limit set by the encoder
        self.max_list_size = max_list_size
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

    def _string(self, data, pos, budget):
        if pos >= len(data):
            raise HpackError("truncated string")
        huffman = bool(data[pos] & 0x80)
        length, pos = hpack_decode_integer(data, pos, 7)
        if pos + length > len(data):
            raise HpackError("truncated string")
        if length > budget * (1 if not huffman else 2):
            raise HpackError("a header string of %d octets would take the header list past %d octets (RFC 7541 sizes)"
                             % (length, self.max_list_size))
        raw = bytes(data[pos:pos + length])
        return (huffman_decode(raw) if huffman else raw), pos + length

    def decode(self, block, deadline=None):
        """Return the header list ``[(name, value), ...]`` (text) of one complete block.

        ``deadline`` (an object with ``expired()``) is checked between fields; when it has passed,
        ``HpackError`` says so and how far decoding got.
        """
        data = bytes(block)
        pos = 0
        headers = []
        size = 0
        while pos < len(data):
            if deadline is not None and deadline.expired():
                raise HpackError("time ran out while decoding a header block of %d octets (%d fields decoded)"
                                 % (len(data), len(headers)))
            byte = data[pos]
            if byte & 0x80:  # indexed header field
                index, pos = hpack_decode_integer(data, pos, 7)
                name, value = self._lookup(index)
            elif byte & 0xE0 == 0x20:  # dynamic table size update
                limit, pos = hpack_decode_integer(data, pos, 5)
                if limit > self.max_table_size:
                    raise HpackError("table size update %d above the limit %d" % (limit, self.max_table_size))
                self.table_size_limit = limit
                self._evict()
                continue
            else:
                if byte & 0xC0 == 0x40:  # literal with incremental indexing
                    index, pos = hpack_decode_integer(data, pos, 6)
                    indexing = True
                else:  # literal without indexing (0000) or never indexed (0001)
                    index, pos = hpack_decode_integer(data, pos, 4)
                    indexing = False
                if index:
                    name = self._lookup(index)[0]
                else:
                    name, pos = self._string(data, pos, self.max_list_size - size)
                value, pos = self._string(data, pos, self.max_list_size - size)
                if indexing:
                    self._add(name, value)
            size += len(name) + len(value) + 32
            if size > self.max_list_size:
                raise HpackError("the header list exceeds %d octets (RFC 7541 sizes) after %d fields"
                                 % (self.max_list_size, len(headers) + 1))
            headers.append((name, value))
        return [(n.decode("utf-8", "replace"), v.decode("utf-8", "replace")) for n, v in headers]
