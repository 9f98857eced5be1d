# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure-Python X.509 reader against certificates and keys made by the ``cryptography`` package."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _x509 as x509m
from ansible_collections.kubeforge.cluster.plugins.module_utils import _x509_der as der
from ansible_collections.kubeforge.cluster.plugins.module_utils._x509_math import CURVES
from cryptography.hazmat.primitives import hashes, serialization
from x509_factory import cert_pem, csr_pem, key_pem, make_cert, make_csr, name, new_key

KEYS = [("rsa", 2048), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521)]


@pytest.fixture(scope="module")
def ca():
    key = new_key("ecdsa", 256)
    return key, make_cert(key, name("etcd-ca", O="kubeforge"), ca=True, days=3650)


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_curve_constants(curve):
    params = CURVES[curve]
    assert params.on_curve(params.g)
    # (n - 1) * G == -G, so G has order n (n is prime): the constants belong together
    assert params.multiply(params.n - 1) == (params.g[0], -params.g[1] % params.p)
    assert params.n.bit_length() == params.bits


@pytest.mark.parametrize(("algo", "size"), KEYS)
@pytest.mark.parametrize("form", ["traditional", "pkcs8"])
def test_private_key_matches_its_certificate(ca, algo, size, form):
    ca_key, ca_cert = ca
    key = new_key(algo, size)
    cert = make_cert(key, name("node1"), ca_key, ca_cert, sans=["node1"])
    parsed_key = x509m.load_private_key(key_pem(key, form))
    parsed_cert = x509m.load_certificates(cert_pem(cert))[0]
    assert parsed_key.public_key == parsed_cert.public_key
    assert parsed_key.public_key.describe() == "%s %d" % (algo, size)
    other = x509m.load_private_key(key_pem(new_key(algo, size), form))
    assert other.public_key != parsed_cert.public_key


@pytest.mark.parametrize("size", [256, 384, 521])
def test_ec_key_without_public_point_is_derived_from_the_scalar(size):
    key = new_key("ecdsa", size)
    numbers = key.private_numbers()
    curve_oid = {256: "1.2.840.10045.3.1.7", 384: "1.3.132.0.34", 521: "1.3.132.0.35"}[size]
    oid_body = bytes([40 * int(curve_oid.split(".")[0]) + int(curve_oid.split(".")[1])])
    for arc in map(int, curve_oid.split(".")[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.insert(0, 0x80 | (arc & 0x7F))
            arc >>= 7
        oid_body += bytes(chunk)
    sec1 = der.encode(der.SEQUENCE, der.encode_integer(1)
                      + der.encode(der.OCTET_STRING, numbers.private_value.to_bytes((size + 7) // 8, "big"))
                      + der.encode(0xA0, der.encode(der.OID, oid_body)))
    parsed = x509m.load_private_key(der.pem_encode("EC PRIVATE KEY", sec1))
    public = key.public_key().public_numbers()
    assert parsed.public_key.numbers == (public.x, public.y)


def test_certificate_fields(ca):
    ca_key, ca_cert = ca
    key = new_key("rsa", 2048)
    cert = make_cert(key, name("node1", O="kubeforge", OU="etcd"), ca_key, ca_cert,
                     sans=["node1", "node1.lab.invalid", "10.0.0.11", "fd00::11"], eku=("server", "client"))
    parsed = x509m.load_certificates(cert_pem(cert))[0]
    assert parsed.common_name == "node1"
    assert parsed.subject == [("O", "kubeforge"), ("OU", "etcd"), ("CN", "node1")]
    assert parsed.issuer == [("O", "kubeforge"), ("CN", "etcd-ca")]
    assert parsed.dns_names == ["node1", "node1.lab.invalid"]
    assert parsed.ip_addresses == ["10.0.0.11", "fd00::11"]
    assert parsed.extended_key_usages == ["server auth", "client auth"]
    assert parsed.key_usages == ["digital signature", "key encipherment"]
    assert parsed.is_ca is False
    assert parsed.serial == cert.serial_number
    assert parsed.not_after == cert.not_valid_after_utc
    assert parsed.not_before == cert.not_valid_before_utc
    assert parsed.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    assert parsed.authority_key_id == x509m.load_certificates(cert_pem(ca_cert))[0].subject_key_id
    ca_parsed = x509m.load_certificates(cert_pem(ca_cert))[0]
    assert ca_parsed.is_ca is True
    assert ca_parsed.key_usages == ["cert sign", "crl sign"]
    info = parsed.info()
    assert info["sans"] == ["node1", "node1.lab.invalid", "10.0.0.11", "fd00::11"]
    assert info["key"] == "rsa 2048"
    assert "PRIVATE" not in repr(info)


@pytest.mark.parametrize(("algo", "size"), KEYS)
@pytest.mark.parametrize("hash_alg", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()], ids=lambda h: h.name)
def test_signature_verification(algo, size, hash_alg):
    issuer_key = new_key(algo, size)
    issuer = make_cert(issuer_key, name("root"), ca=True, hash_alg=hash_alg)
    leaf = make_cert(new_key(), name("leaf"), issuer_key, issuer, hash_alg=hash_alg)
    parsed_issuer = x509m.load_certificates(cert_pem(issuer))[0]
    parsed_leaf = x509m.load_certificates(cert_pem(leaf))[0]
    assert parsed_leaf.signed_by(parsed_issuer)
    assert parsed_issuer.signed_by(parsed_issuer)  # self-signed
    # same subject, another key: a re-created CA must not pass for the old one
    impostor = x509m.load_certificates(cert_pem(make_cert(new_key(algo, size), name("root"), ca=True)))[0]
    assert not parsed_leaf.signed_by(impostor)


def test_tampered_certificate_fails_verification(ca):
    ca_key, ca_cert = ca
    leaf = make_cert(new_key(), name("leaf"), ca_key, ca_cert, sans=["a.lab.invalid"])
    data = bytearray(leaf.public_bytes(serialization.Encoding.DER))
    index = bytes(data).index(b"a.lab.invalid")
    data[index] = ord("b")
    tampered = x509m.Certificate(bytes(data))
    assert tampered.dns_names == ["b.lab.invalid"]
    assert not tampered.signed_by(x509m.load_certificates(cert_pem(ca_cert))[0])


def test_chain_file_order(ca):
    ca_key, ca_cert = ca
    leaf = make_cert(new_key(), name("leaf"), ca_key, ca_cert)
    chain = x509m.load_certificates(cert_pem(leaf) + cert_pem(ca_cert))
    assert [c.common_name for c in chain] == ["leaf", "etcd-ca"]


def test_request_public_key():
    key = new_key("ecdsa", 384)
    request = x509m.load_request(csr_pem(make_csr(key, name("node1", O="kubeforge"))))
    assert request.public_key == x509m.load_private_key(key_pem(key)).public_key
    assert request.subject == [("O", "kubeforge"), ("CN", "node1")]


def test_utc_and_generalized_times(ca):
    ca_key, ca_cert = ca
    far = datetime.datetime(2051, 1, 1, tzinfo=datetime.timezone.utc)  # after 2049: GeneralizedTime
    cert = make_cert(new_key(), name("leaf"), ca_key, ca_cert, not_before=far, days=1)
    parsed = x509m.load_certificates(cert_pem(cert))[0]
    assert parsed.not_before == far
    assert parsed.not_after == far + datetime.timedelta(days=1)


@pytest.mark.parametrize(("text", "message"), [
    ("", "holds no PEM certificate"),
    ("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", "not valid base64"),
    ("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n", "not a valid X.509 certificate"),
])
def test_bad_certificates(text, message):
    with pytest.raises(x509m.X509Error, match=message):
        x509m.load_certificates(text)


def test_bad_keys():
    with pytest.raises(x509m.X509Error, match="holds 0 PEM private keys"):
        x509m.load_private_key("nothing here")
    encrypted = new_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.BestAvailableEncryption(b"secret")).decode()
    with pytest.raises(x509m.X509Error, match="not an unencrypted private key"):
        x509m.load_private_key(encrypted)
    with pytest.raises(x509m.X509Error, match="indefinite length|not a valid private key"):
        x509m.load_private_key(der.pem_encode("RSA PRIVATE KEY", b"\x30\x80\x00\x00"))


def test_der_reader_refuses_trailing_and_truncated_data():
    with pytest.raises(der.DerError, match="trailing"):
        der.parse(b"\x05\x00\x00")
    with pytest.raises(der.DerError, match="past the end"):
        der.parse(b"\x04\x05ab")
    assert der.decode_oid(bytes.fromhex("2a864886f70d010101")) == "1.2.840.113549.1.1.1"
