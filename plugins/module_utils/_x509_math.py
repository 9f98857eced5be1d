# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signature checks for ``_x509`` in pure Python: RSA PKCS#1 v1.5 and ECDSA on P-256/P-384/P-521.

Only *verification* with public keys (and deriving an EC public key from its private scalar): nothing here signs,
so constant-time arithmetic is not needed. It decides whether a certificate was signed by a given CA, which is
how ``cfssl_cert`` notices a leaf issued by another (or an earlier, replaced) CA.
"""

from __future__ import annotations

import hashlib


class Curve:
    """A short Weierstrass curve y^2 = x^3 - 3x + b over GF(p) with base point G of order n."""

    def __init__(self, name, bits, oid, p, b, gx, gy, n):
        self.name, self.bits, self.oid = name, bits, oid
        self.p, self.b, self.g, self.n = p, b, (gx, gy), n
        self.size = (p.bit_length() + 7) // 8

    def on_curve(self, point):
        x, y = point
        return 0 <= x < self.p and 0 <= y < self.p and (y * y - (x * x * x - 3 * x + self.b)) % self.p == 0

    # Jacobian coordinates (X, Y, Z) ~ (X/Z^2, Y/Z^3); None is the point at infinity.
    def _double(self, point):
        if point is None:
            return None
        x, y, z = point
        p = self.p
        if y == 0:
            return None
        ysq = y * y % p
        zsq = z * z % p
        s = 4 * x * ysq % p
        m = 3 * (x - zsq) * (x + zsq) % p  # a = -3
        nx = (m * m - 2 * s) % p
        ny = (m * (s - nx) - 8 * ysq * ysq) % p
        nz = 2 * y * z % p
        return nx, ny, nz

    def _add(self, first, second):
        if first is None:
            return second
        if second is None:
            return first
        p = self.p
        x1, y1, z1 = first
        x2, y2, z2 = second
        z1sq, z2sq = z1 * z1 % p, z2 * z2 % p
        u1, u2 = x1 * z2sq % p, x2 * z1sq % p
        s1, s2 = y1 * z2 * z2sq % p, y2 * z1 * z1sq % p
        if u1 == u2:
            return self._double(first) if s1 == s2 else None
        h, r = (u2 - u1) % p, (s2 - s1) % p
        hsq = h * h % p
        hcu = h * hsq % p
        nx = (r * r - hcu - 2 * u1 * hsq) % p
        ny = (r * (u1 * hsq - nx) - s1 * hcu) % p
        nz = h * z1 * z2 % p
        return nx, ny, nz

    def _affine(self, point):
        if point is None:
            return None
        x, y, z = point
        zinv = pow(z, -1, self.p)
        zinv2 = zinv * zinv % self.p
        return x * zinv2 % self.p, y * zinv2 * zinv % self.p

    def multiply(self, scalar, point=None):
        """``scalar`` times ``point`` (default G), affine, or None for infinity."""
        return self._affine(self._mul(scalar, point or self.g))

    def _mul(self, scalar, point):
        result, addend = None, (point[0], point[1], 1)
        for bit in bin(scalar % self.n)[2:]:
            result = self._double(result)
            if bit == "1":
                result = self._add(result, addend)
        return result

    def decode_point(self, data):
        """An uncompressed (04||X||Y) or compressed (02/03||X) SEC1 point on this curve."""
        size = self.size
        if len(data) == 1 + 2 * size and data[0] == 4:
            point = int.from_bytes(data[1:1 + size], "big"), int.from_bytes(data[1 + size:], "big")
        elif len(data) == 1 + size and data[0] in (2, 3):
            x = int.from_bytes(data[1:], "big")
            y = pow((x * x * x - 3 * x + self.b) % self.p, (self.p + 1) // 4, self.p)  # p = 3 mod 4 for all three
            if y % 2 != data[0] % 2:
                y = self.p - y
            point = x, y
        else:
            raise ValueError("not a %s point encoding" % self.name)
        if not self.on_curve(point):
            raise ValueError("point is not on %s" % self.name)
        return point

    def verify(self, point, digest, r, s):
        """ECDSA verification of ``digest`` (bytes) with public ``point``."""
        n = self.n
        if not (0 < r < n and 0 < s < n):
            return False
        e = int.from_bytes(digest, "big")
        excess = len(digest) * 8 - n.bit_length()
        if excess > 0:
            e >>= excess
        w = pow(s, -1, n)
        total = self._add(self._mul(e * w % n, self.g), self._mul(r * w % n, point))
        result = self._affine(total)
        return result is not None and result[0] % n == r


CURVES = {
    "1.2.840.10045.3.1.7": Curve(
        "P-256", 256, "1.2.840.10045.3.1.7",
        0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
    "1.3.132.0.34": Curve(
        "P-384", 384, "1.3.132.0.34",
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
        0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973),
    "1.3.132.0.35": Curve(
        "P-521", 521, "1.3.132.0.35",
        (1 << 521) - 1,
        0x0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
        0x00C6858E06B70404E9CD9E3ECB662395B4429C648139053FB521F828AF606B4D3DBAA14B5E77EFE75928FE1DC127A2FFA8DE3348B3C1856A429BF97E7E31C2E5BD66,
        0x011839296A789A3BC0045C8A5FB42C7D1BD998F54449579B446817AFBD17273E662C97EE72995EF42640C550B9013FAD0761353C7086A272C24088BE94769FD16650,
        0x01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409),
}

# DER DigestInfo prefixes of PKCS#1 v1.5 signatures (RFC 8017 section 9.2, note 1).
_DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def rsa_verify(n, e, hash_name, message, signature):
    """RSASSA-PKCS1-v1_5 verification of ``message`` (bytes) with the public key (n, e)."""
    size = (n.bit_length() + 7) // 8
    if len(signature) != size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= n:
        return False
    encoded = pow(value, e, n).to_bytes(size, "big")
    digest_info = _DIGEST_INFO[hash_name] + hashlib.new(hash_name, message).digest()
    padding = size - len(digest_info) - 3
    return padding >= 8 and encoded == b"\x00\x01" + b"\xff" * padding + b"\x00" + digest_info
