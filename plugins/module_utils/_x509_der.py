# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PEM blocks and a strict DER reader: the encoding layer under ``_x509`` (stdlib only).

It reads exactly what X.509 certificates, CSRs and private keys use (SEQUENCE, SET, INTEGER, BIT STRING, OCTET
STRING, OID, strings, times, context-tagged fields) and refuses anything malformed with ``DerError`` (indefinite
lengths, lengths running past the end, trailing bytes), so a damaged file is reported, never half-read.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re

# Universal tags (class universal, the constructed bit included where DER requires it).
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
UNIVERSAL_STRING = 0x1C
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31

_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n-----END \1-----", re.S)


class DerError(ValueError):
    """The bytes are not the DER structure expected; the message says where."""


def pem_blocks(text):
    """Every PEM block of ``text`` as ``(label, der_bytes)``, in order. Headers (``Proc-Type``) are refused."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    blocks = []
    for match in _PEM_RE.finditer(text):
        body = match.group(2)
        if ":" in body:
            raise DerError("PEM block %s has headers (an encrypted key?); only unencrypted PEM is supported" % match.group(1))
        try:
            blocks.append((match.group(1), base64.b64decode("".join(body.split()), validate=True)))
        except (binascii.Error, ValueError):
            raise DerError("PEM block %s is not valid base64" % match.group(1)) from None
    return blocks


def pem_encode(label, der):
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


class Element:
    """One DER TLV: ``tag`` (the identifier octet), ``value`` (content bytes), ``raw`` (the whole encoding)."""

    __slots__ = ("tag", "value", "raw")

    def __init__(self, tag, value, raw):
        self.tag = tag
        self.value = value
        self.raw = raw

    @property
    def constructed(self):
        return bool(self.tag & 0x20)

    def context(self, number):
        """True when this is the context-specific tag ``[number]`` (primitive or constructed)."""
        return self.tag & 0xC0 == 0x80 and self.tag & 0x1F == number

    def children(self):
        if not self.constructed:
            raise DerError("tag 0x%02x is primitive, expected a constructed element" % self.tag)
        return read_all(self.value)

    def expect(self, tag, what):
        if self.tag != tag:
            raise DerError("%s: expected tag 0x%02x, found 0x%02x" % (what, tag, self.tag))
        return self

    # Typed views --------------------------------------------------------------------------------------------
    def integer(self, what="INTEGER"):
        self.expect(INTEGER, what)
        if not self.value:
            raise DerError("%s: empty INTEGER" % what)
        return int.from_bytes(self.value, "big", signed=True)

    def bit_string(self, what="BIT STRING"):
        """The bytes of a BIT STRING with no unused bits (keys and signatures always are whole bytes)."""
        self.expect(BIT_STRING, what)
        if not self.value or self.value[0] != 0:
            raise DerError("%s: BIT STRING with unused bits" % what)
        return self.value[1:]

    def octets(self, what="OCTET STRING"):
        return self.expect(OCTET_STRING, what).value

    def oid(self, what="OID"):
        self.expect(OID, what)
        return decode_oid(self.value)

    def text(self, what="string"):
        if self.tag in (UTF8_STRING, PRINTABLE_STRING, IA5_STRING, T61_STRING):
            return self.value.decode("utf-8" if self.tag == UTF8_STRING else "latin-1")
        if self.tag == BMP_STRING:
            return self.value.decode("utf-16-be")
        if self.tag == UNIVERSAL_STRING:
            return self.value.decode("utf-32-be")
        raise DerError("%s: tag 0x%02x is not a string type" % (what, self.tag))

    def time(self, what="time"):
        text = self.value.decode("ascii", "replace")
        if self.tag == UTC_TIME and re.match(r"^\d{12}Z$", text):
            year = int(text[:2])
            text = ("19" if year >= 50 else "20") + text
        elif not (self.tag == GENERALIZED_TIME and re.match(r"^\d{14}Z$", text)):
            raise DerError("%s: %r is not a DER UTCTime/GeneralizedTime" % (what, text))
        return datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.timezone.utc)


def read_one(data, offset=0):
    """The element at ``offset`` and the offset after it."""
    if offset + 2 > len(data):
        raise DerError("truncated element at offset %d" % offset)
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used by X.509 (offset %d)" % offset)
    first = data[offset + 1]
    position = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length at offset %d is not DER" % offset)
    else:
        count = first & 0x7F
        if count > 4 or position + count > len(data):
            raise DerError("bad length of length at offset %d" % offset)
        length = int.from_bytes(data[position:position + count], "big")
        position += count
    end = position + length
    if end > len(data):
        raise DerError("element at offset %d runs %d bytes past the end" % (offset, end - len(data)))
    return Element(tag, data[position:end], data[offset:end]), end


def read_all(data):
    """Every element of ``data`` (the content of a SEQUENCE/SET)."""
    elements, offset = [], 0
    while offset < len(data):
        element, offset = read_one(data, offset)
        elements.append(element)
    return elements


def parse(data, what="DER"):
    """Exactly one element filling ``data``."""
    element, end = read_one(data)
    if end != len(data):
        raise DerError("%s: %d trailing bytes" % (what, len(data) - end))
    return element


def decode_oid(value):
    if not value:
        raise DerError("empty OID")
    arcs, current = [], 0
    for byte in value:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    if value[-1] & 0x80:
        raise DerError("truncated OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first] + arcs[1:])


# Encoders: only what the tests and the key-matching code need to build small structures.
def encode(tag, value):
    length = len(value)
    if length < 0x80:
        header = bytes([tag, length])
    else:
        size = (length.bit_length() + 7) // 8
        header = bytes([tag, 0x80 | size]) + length.to_bytes(size, "big")
    return header + value


def encode_integer(number):
    size = max(1, (number.bit_length() + 8) // 8)
    return encode(INTEGER, number.to_bytes(size, "big", signed=True))
