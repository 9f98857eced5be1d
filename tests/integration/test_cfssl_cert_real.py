# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cfssl_cert with the real cfssl 1.2 (Debian bookworm) and 1.6.5 (trixie), end to end through the module.

Each result is judged by ``openssl`` where it is installed and by the ``cryptography`` package (an independent
X.509 implementation): SANs, usages, the CA's signature, key reuse, the 0600 key and the atomic generation switch.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import debfetch
import pytest
from ansible_collections.kubeforge.cluster.plugins.modules import cfssl_cert
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from module_harness import ExitJson, FailJson, call_main, patch_module_exits

pytestmark = pytest.mark.real_binary

SUITES = {"bookworm": "1.2", "trixie": "1.6.5"}


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    return patch_module_exits(monkeypatch)


@pytest.fixture(scope="module", params=sorted(SUITES))
def cfssl(request):
    try:
        root = debfetch.fetch("golang-cfssl", request.param)
    except debfetch.DebFetchError as exc:
        pytest.skip("golang-cfssl from %s cannot be fetched: %s" % (request.param, exc))
    return str(root / "usr" / "bin" / "cfssl")


def load(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def verify_signed(cert, issuer):
    public = issuer.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    else:
        public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)


def sans(cert):
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in names.get_values_for_type(x509.DNSName)] + [str(v) for v in names.get_values_for_type(x509.IPAddress)]


def members(directory, extra=()):
    certificates = [
        {"name": "node1-server", "cn": "node1", "profile": "server", "hosts": ["node1", "10.0.0.11", "127.0.0.1", *extra]},
        {"name": "node1-peer", "cn": "node1", "profile": "peer", "hosts": ["node1", "10.0.0.11"]},
        {"name": "admin", "cn": "etcd-admin", "profile": "client", "key": {"algo": "rsa", "size": 2048}},
    ]
    return {"dir": str(directory), "ca": {"cn": "etcd-ca", "names": {"O": "kubeforge", "OU": "etcd"}}, "certificates": certificates}


def run(args, cfssl, **kwargs):
    return call_main(cfssl_cert.main, dict(args, cfssl_path=cfssl), **kwargs)


def test_issue_then_unchanged_then_one_san(cfssl, tmp_path):
    kind, first = run(members(tmp_path), cfssl)
    assert kind is ExitJson, first
    assert first["reasons"] == ["ca: CA missing", "node1-server: certificate missing", "node1-peer: certificate missing",
                                "admin: certificate missing"]
    ca = load(tmp_path / "ca" / "cert.pem")
    server = load(tmp_path / "node1-server" / "cert.pem")
    peer = load(tmp_path / "node1-peer" / "cert.pem")
    admin = load(tmp_path / "admin" / "cert.pem")
    for cert in (server, peer, admin):
        verify_signed(cert, ca)
    verify_signed(ca, ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert sans(server) == ["node1", "10.0.0.11", "127.0.0.1"]
    assert sans(peer) == ["node1", "10.0.0.11"]
    eku = {name: [u._name for u in c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
           for name, c in (("server", server), ("peer", peer), ("admin", admin))}
    assert eku == {"server": ["serverAuth"], "peer": ["serverAuth", "clientAuth"], "admin": ["clientAuth"]}
    assert admin.public_key().key_size == 2048
    assert oct(os.stat(tmp_path / "admin" / "key.pem").st_mode & 0o777) == "0o600"
    assert oct(os.stat(tmp_path).st_mode & 0o777) == "0o700"

    kind, second = run(members(tmp_path), cfssl)
    assert (kind, second["changed"], second["reasons"]) == (ExitJson, False, [])

    server_key = (tmp_path / "node1-server" / "key.pem").read_bytes()
    peer_generation = os.readlink(tmp_path / "node1-peer")
    kind, check = run(members(tmp_path, extra=["10.0.0.99"]), cfssl, check_mode=True, diff=True)
    assert check["reasons"] == ["node1-server: SAN 10.0.0.99 missing"]
    assert "sans: [10.0.0.11, 10.0.0.99, 127.0.0.1, node1]" in check["diff"][0]["after"]
    assert "PRIVATE" not in repr(check)
    assert sans(load(tmp_path / "node1-server" / "cert.pem")) == ["node1", "10.0.0.11", "127.0.0.1"]  # check mode wrote nothing

    kind, third = run(members(tmp_path, extra=["10.0.0.99"]), cfssl)
    assert third["reasons"] == ["node1-server: SAN 10.0.0.99 missing"]
    assert third["certificates"]["node1-server"]["new_key"] is False
    assert sans(load(tmp_path / "node1-server" / "cert.pem")) == ["node1", "10.0.0.11", "127.0.0.1", "10.0.0.99"]
    assert (tmp_path / "node1-server" / "key.pem").read_bytes() == server_key  # the key was kept
    assert os.readlink(tmp_path / "node1-peer") == peer_generation  # nothing else was touched


def test_rotation_renewal_and_removed_sans(cfssl, tmp_path):
    assert run(members(tmp_path), cfssl)[0] is ExitJson
    old_key = (tmp_path / "node1-peer" / "key.pem").read_bytes()
    ca_key = (tmp_path / "ca" / "key.pem").read_bytes()
    args = members(tmp_path)
    args["certificates"][1]["hosts"] = []  # no SANs at all (a client-like peer): the kept request has none either
    kind, result = run(dict(args, rotate_keys=True), cfssl)
    assert result["reasons"] == ["node1-peer: SAN node1 unexpected", "node1-peer: SAN 10.0.0.11 unexpected",
                                 "node1-peer: new key: key rotation requested"]
    peer = load(tmp_path / "node1-peer" / "cert.pem")
    with pytest.raises(x509.ExtensionNotFound):
        peer.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert (tmp_path / "node1-peer" / "key.pem").read_bytes() != old_key
    # one-day certificates inside a 30-day renewal window: renewed on every run, the CA keeps its key
    short = dict(members(tmp_path), expiry="24h", ca={"cn": "etcd-ca", "names": {"O": "kubeforge", "OU": "etcd"}, "expiry": "240h"})
    kind, renewed = run(short, cfssl)
    assert kind is ExitJson, renewed
    assert "ca: expires in 3649 days (renewal window 30 days)" not in renewed["reasons"]
    assert any(r.startswith("ca: valid for 3650 days, want 240h") for r in renewed["reasons"])
    kind, again = run(short, cfssl)
    assert "ca: expires in 9 days (renewal window 30 days)" in again["reasons"]
    assert "node1-peer: expires in 0 days (renewal window 30 days)" in again["reasons"]
    assert (tmp_path / "ca" / "key.pem").read_bytes() == ca_key
    ca = load(tmp_path / "ca" / "cert.pem")
    verify_signed(load(tmp_path / "node1-server" / "cert.pem"), ca)


def test_intermediate_ca_under_an_operator_root(cfssl, tmp_path):
    root_dir = tmp_path / "root"
    assert run({"dir": str(root_dir), "ca": {"cn": "company root"}}, cfssl)[0] is ExitJson
    args = members(tmp_path / "etcd")
    args["ca"]["signed_by"] = {"cert": str(root_dir / "ca" / "cert.pem"), "key": str(root_dir / "ca" / "key.pem")}
    kind, result = run(args, cfssl)
    assert kind is ExitJson, result
    root, intermediate = load(root_dir / "ca" / "cert.pem"), load(tmp_path / "etcd" / "ca" / "cert.pem")
    verify_signed(intermediate, root)
    constraints = intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    verify_signed(load(tmp_path / "etcd" / "node1-peer" / "cert.pem"), intermediate)
    assert run(args, cfssl)[1]["changed"] is False
    # the operator replaces the root: the intermediate is signed again with its key, the leaves stay valid
    shutil.rmtree(root_dir)
    run({"dir": str(root_dir), "ca": {"cn": "company root"}}, cfssl)
    kind, resigned = run(args, cfssl)
    assert resigned["reasons"] == ["ca: not signed by the CA CN=company root (issuer is CN=company root)"]
    verify_signed(load(tmp_path / "etcd" / "ca" / "cert.pem"), load(root_dir / "ca" / "cert.pem"))
    verify_signed(load(tmp_path / "etcd" / "node1-peer" / "cert.pem"), load(tmp_path / "etcd" / "ca" / "cert.pem"))


def test_openssl_agrees_on_the_chain(cfssl, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    run(members(tmp_path), cfssl)
    proc = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca" / "cert.pem"), "-purpose", "sslserver",
                           str(tmp_path / "node1-server" / "cert.pem")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    key = serialization.load_pem_private_key((tmp_path / "node1-server" / "key.pem").read_bytes(), None)
    assert key.public_key() == load(tmp_path / "node1-server" / "cert.pem").public_key()


def test_errors(cfssl, tmp_path):
    kind, result = call_main(cfssl_cert.main, dict(members(tmp_path), cfssl_path=str(tmp_path / "nowhere" / "cfssl")))
    assert kind is FailJson
    assert "cfssl_path: cfssl (%s) was not found on this host; install it (Debian/Ubuntu package golang-cfssl)" % (
        tmp_path / "nowhere" / "cfssl") in result["msg"]
    bad = members(tmp_path)
    bad["certificates"][0]["hosts"] = ["node 1"]
    kind, result = run(bad, cfssl)
    assert kind is FailJson
    assert result["msg"] == "certificates[0].hosts[0]: 'node 1' is neither a DNS name nor an IP address (a CSR host must be one)"
    assert list(tmp_path.iterdir()) == []  # validated before anything was created
