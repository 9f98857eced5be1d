# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read X.509 certificates, certificate requests and private keys in pure Python (stdlib only).

``cfssl_cert`` decides whether to re-issue by inspecting what exists (subject, SANs, usages, issuer, the
signature of the CA, the key pair, validity), and ``etcd_certs`` refuses to install a certificate with a key that
does not belong to it. Both run on hosts that may have nothing but python3, so no ``cryptography`` here.

Supported: RSA and EC (P-256/P-384/P-521) keys as PKCS#1, SEC1 or unencrypted PKCS#8 PEM; certificates signed
with RSA PKCS#1 v1.5 or ECDSA over SHA-1/SHA-256/SHA-384/SHA-512 (what cfssl and common CAs produce).
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.kubeforge.cluster.plugins.module_utils import _x509_der as der
from ansible_collections.kubeforge.cluster.plugins.module_utils._x509_math import CURVES, rsa_verify

RSA_OID = "1.2.840.113549.1.1.1"
EC_OID = "1.2.840.10045.2.1"
SIGNATURE_ALGORITHMS = {
    "1.2.840.113549.1.1.5": ("rsa", "sha1"),
    "1.2.840.113549.1.1.11": ("rsa", "sha256"),
    "1.2.840.113549.1.1.12": ("rsa", "sha384"),
    "1.2.840.113549.1.1.13": ("rsa", "sha512"),
    "1.2.840.10045.4.1": ("ecdsa", "sha1"),
    "1.2.840.10045.4.3.2": ("ecdsa", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa", "sha512"),
}
NAME_ATTRIBUTES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber", "2.5.4.9": "street", "2.5.4.17": "postalCode", "1.2.840.113549.1.9.1": "emailAddress",
}
EXTENDED_KEY_USAGES = {
    "1.3.6.1.5.5.7.3.1": "server auth", "1.3.6.1.5.5.7.3.2": "client auth", "1.3.6.1.5.5.7.3.3": "code signing",
    "1.3.6.1.5.5.7.3.4": "email protection", "1.3.6.1.5.5.7.3.8": "timestamping", "1.3.6.1.5.5.7.3.9": "ocsp signing",
    "2.5.29.37.0": "any",
}
KEY_USAGES = ("digital signature", "content commitment", "key encipherment", "data encipherment", "key agreement",
              "cert sign", "crl sign", "encipher only", "decipher only")
SAN_OID, BASIC_CONSTRAINTS_OID, KEY_USAGE_OID, EKU_OID = "2.5.29.17", "2.5.29.19", "2.5.29.15", "2.5.29.37"
SKI_OID, AKI_OID = "2.5.29.14", "2.5.29.35"


class X509Error(ValueError):
    """The PEM/DER data is not a usable certificate, request or key; the message says why."""


class PublicKey:
    """``kind`` 'rsa' (``numbers`` = (n, e)) or 'ecdsa' (``numbers`` = (x, y), ``curve``)."""

    def __init__(self, kind, numbers, curve=None):
        self.kind, self.numbers, self.curve = kind, numbers, curve

    @property
    def size(self):
        return self.numbers[0].bit_length() if self.kind == "rsa" else self.curve.bits

    def describe(self):
        return "%s %d" % (self.kind, self.size)

    def __eq__(self, other):
        return (isinstance(other, PublicKey) and self.kind == other.kind and self.numbers == other.numbers
                and (self.curve.oid if self.curve else None) == (other.curve.oid if other.curve else None))

    def __hash__(self):
        return hash((self.kind, self.numbers))

    def verify(self, hash_name, message, signature):
        if self.kind == "rsa":
            return rsa_verify(self.numbers[0], self.numbers[1], hash_name, message, signature)
        try:
            pair = der.parse(signature, "ECDSA signature").expect(der.SEQUENCE, "ECDSA signature").children()
            r, s = pair[0].integer(), pair[1].integer()
        except (der.DerError, IndexError):
            return False
        return self.curve.verify(self.numbers, hashlib.new(hash_name, message).digest(), r, s)


def _public_key_from_spki(element):
    fields = element.expect(der.SEQUENCE, "SubjectPublicKeyInfo").children()
    algorithm = fields[0].children()
    oid = algorithm[0].oid()
    key_bits = fields[1].bit_string("subjectPublicKey")
    if oid == RSA_OID:
        numbers = der.parse(key_bits, "RSAPublicKey").children()
        return PublicKey("rsa", (numbers[0].integer(), numbers[1].integer()))
    if oid == EC_OID:
        curve = _curve(algorithm[1].oid() if len(algorithm) > 1 else None)
        return PublicKey("ecdsa", _point(curve, key_bits), curve)
    raise X509Error("public key algorithm %s is not supported (RSA and ECDSA are)" % oid)


def _curve(oid):
    if oid not in CURVES:
        raise X509Error("elliptic curve %s is not supported (P-256, P-384 and P-521 are)" % oid)
    return CURVES[oid]


def _point(curve, data):
    try:
        return curve.decode_point(data)
    except ValueError as exc:
        raise X509Error(str(exc)) from None


def parse_name(element):
    """A Name as an ordered list of (attribute, value) pairs, e.g. [('O', 'kubeforge'), ('CN', 'etcd-ca')]."""
    pairs = []
    for rdn in element.expect(der.SEQUENCE, "Name").children():
        for attribute in rdn.expect(der.SET, "RelativeDistinguishedName").children():
            oid_element, value = attribute.children()[:2]
            oid = oid_element.oid()
            pairs.append((NAME_ATTRIBUTES.get(oid, oid), value.text("name attribute %s" % oid)))
    return pairs


def name_text(pairs):
    return ",".join("%s=%s" % pair for pair in pairs)


class Certificate:
    """A parsed certificate: ``subject``/``issuer`` (pairs and raw DER), validity, key, SANs and usages."""

    def __init__(self, data):
        self.der = data
        try:
            self._parse(data)
        except (der.DerError, IndexError, UnicodeDecodeError, ValueError) as exc:
            raise X509Error("not a valid X.509 certificate: %s" % exc) from None

    def _parse(self, data):
        top = der.parse(data, "certificate").expect(der.SEQUENCE, "Certificate").children()
        tbs, signature_algorithm, signature = top[0], top[1].children()[0].oid(), top[2].bit_string("signature")
        self.tbs_der, self.signature = tbs.raw, signature
        if signature_algorithm not in SIGNATURE_ALGORITHMS:
            raise X509Error("signature algorithm %s is not supported" % signature_algorithm)
        self.signature_algorithm = SIGNATURE_ALGORITHMS[signature_algorithm]
        fields = tbs.expect(der.SEQUENCE, "TBSCertificate").children()
        index = 1 if fields[0].context(0) else 0
        self.serial = fields[index].integer("serialNumber")
        self.issuer_der, self.subject_der = fields[index + 2].raw, fields[index + 4].raw
        self.issuer, self.subject = parse_name(fields[index + 2]), parse_name(fields[index + 4])
        validity = fields[index + 3].children()
        self.not_before, self.not_after = validity[0].time("notBefore"), validity[1].time("notAfter")
        self.public_key = _public_key_from_spki(fields[index + 5])
        self.dns_names, self.ip_addresses, self.extended_key_usages, self.key_usages = [], [], [], []
        self.is_ca, self.path_length, self.subject_key_id, self.authority_key_id = False, None, None, None
        for field in fields[index + 6:]:
            if field.context(3):
                for extension in der.parse(field.value, "extensions").children():
                    self._extension(extension.children())

    def _extension(self, parts):
        oid = parts[0].oid()
        value = der.parse(parts[-1].octets("extnValue"), "extension %s" % oid)
        if oid == SAN_OID:
            for name in value.children():
                if name.context(2):
                    self.dns_names.append(name.value.decode("ascii"))
                elif name.context(7):
                    self.ip_addresses.append(str(ipaddress.ip_address(name.value)))
        elif oid == BASIC_CONSTRAINTS_OID:
            for item in value.children():
                if item.tag == der.BOOLEAN:
                    self.is_ca = item.value != b"\x00"
                elif item.tag == der.INTEGER:
                    self.path_length = item.integer()
        elif oid == KEY_USAGE_OID:
            bits = value.expect(der.BIT_STRING, "keyUsage").value
            flags = int.from_bytes(bits[1:], "big") if len(bits) > 1 else 0
            width = (len(bits) - 1) * 8
            self.key_usages = [usage for position, usage in enumerate(KEY_USAGES)
                               if position < width and flags >> (width - 1 - position) & 1]
        elif oid == EKU_OID:
            self.extended_key_usages = [EXTENDED_KEY_USAGES.get(item.oid(), item.oid()) for item in value.children()]
        elif oid == SKI_OID:
            self.subject_key_id = value.octets("subjectKeyIdentifier").hex()
        elif oid == AKI_OID:
            for item in value.children():
                if item.context(0):
                    self.authority_key_id = item.value.hex()

    @property
    def common_name(self):
        values = [value for attribute, value in self.subject if attribute == "CN"]
        return values[0] if values else ""

    @property
    def sans(self):
        return list(self.dns_names) + list(self.ip_addresses)

    @property
    def fingerprint(self):
        return hashlib.sha256(self.der).hexdigest()

    def signed_by(self, issuer):
        """True when ``issuer`` (a Certificate) names this certificate's issuer and its key verifies the signature."""
        if issuer.subject_der != self.issuer_der or issuer.public_key.kind != self.signature_algorithm[0]:
            return False
        return issuer.public_key.verify(self.signature_algorithm[1], self.tbs_der, self.signature)

    def pem(self):
        return der.pem_encode("CERTIFICATE", self.der)

    def info(self):
        """What a diff or a result shows of a certificate: never key material."""
        return {
            "subject": name_text(self.subject),
            "issuer": name_text(self.issuer),
            "sans": self.sans,
            "serial": "%x" % self.serial,
            "not_before": self.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "key": self.public_key.describe(),
            "usages": self.key_usages + self.extended_key_usages,
            "is_ca": self.is_ca,
            "sha256_fingerprint": self.fingerprint,
        }


class CertificateRequest:
    """A PKCS#10 request: the subject and the public key it was made for."""

    def __init__(self, data):
        try:
            info = der.parse(data, "CSR").expect(der.SEQUENCE, "CertificationRequest").children()[0].children()
            self.subject = parse_name(info[1])
            self.public_key = _public_key_from_spki(info[2])
        except (der.DerError, IndexError, UnicodeDecodeError, ValueError) as exc:
            raise X509Error("not a valid certificate request: %s" % exc) from None


class PrivateKey:
    """A private key reduced to what matching needs: its public key. The secret numbers are not kept."""

    def __init__(self, label, data):
        try:
            self.public_key = self._parse(label, data)
        except (der.DerError, IndexError, ValueError) as exc:
            if isinstance(exc, X509Error):
                raise
            raise X509Error("not a valid private key: %s" % exc) from None

    def _parse(self, label, data):
        element = der.parse(data, "private key").expect(der.SEQUENCE, "private key")
        if label == "RSA PRIVATE KEY":
            return self._rsa(element)
        if label == "EC PRIVATE KEY":
            return self._ec(element, None)
        if label == "PRIVATE KEY":
            fields = element.children()
            algorithm = fields[1].children()
            inner = der.parse(fields[2].octets("privateKey"), "PKCS#8 key")
            if algorithm[0].oid() == RSA_OID:
                return self._rsa(inner)
            if algorithm[0].oid() == EC_OID:
                return self._ec(inner, algorithm[1].oid())
            raise X509Error("private key algorithm %s is not supported (RSA and ECDSA are)" % algorithm[0].oid())
        raise X509Error("PEM block %r is not an unencrypted private key" % label)

    @staticmethod
    def _rsa(element):
        numbers = element.children()
        return PublicKey("rsa", (numbers[1].integer(), numbers[2].integer()))

    @staticmethod
    def _ec(element, curve_oid):
        fields = element.children()
        scalar = int.from_bytes(fields[1].octets("EC privateKey"), "big")
        point = None
        for field in fields[2:]:
            if field.context(0):
                curve_oid = der.parse(field.value).oid()
            elif field.context(1):
                point = der.parse(field.value).bit_string("EC publicKey")
        curve = _curve(curve_oid)
        if point is not None:
            return PublicKey("ecdsa", _point(curve, point), curve)
        return PublicKey("ecdsa", curve.multiply(scalar), curve)


def load_certificates(text, what="certificate file"):
    """Every certificate of a PEM text, in order (leaf first in a chain file)."""
    try:
        blocks = der.pem_blocks(text)
    except der.DerError as exc:
        raise X509Error("%s: %s" % (what, exc)) from None
    certificates = [Certificate(data) for label, data in blocks if label == "CERTIFICATE"]
    if not certificates:
        raise X509Error("%s holds no PEM certificate" % what)
    return certificates


def load_private_key(text, what="key file"):
    try:
        blocks = [(label, data) for label, data in der.pem_blocks(text) if label.endswith("PRIVATE KEY")]
    except der.DerError as exc:
        raise X509Error("%s: %s" % (what, exc)) from None
    if len(blocks) != 1:
        raise X509Error("%s holds %d PEM private keys, expected one" % (what, len(blocks)))
    return PrivateKey(*blocks[0])


def load_request(text, what="CSR file"):
    try:
        blocks = [data for label, data in der.pem_blocks(text) if label in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")]
    except der.DerError as exc:
        raise X509Error("%s: %s" % (what, exc)) from None
    if len(blocks) != 1:
        raise X509Error("%s holds %d certificate requests, expected one" % (what, len(blocks)))
    return CertificateRequest(blocks[0])
