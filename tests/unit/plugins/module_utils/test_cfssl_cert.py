# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cfssl_cert's decisions on certificates the tests make themselves (``cryptography``), with a scripted cfssl.

The real cfssl 1.2 and 1.6 judge the same code in tests/integration/test_cfssl_cert_real.py.
"""

from __future__ import annotations

import datetime
import json
import os

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cfssl_cert as cc
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cfssl_store as store
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl import Cfssl, CfsslError, signing_config
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl_spec import normalize
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError
from x509_factory import NOW, cert_pem, csr_pem, key_pem, make_cert, make_csr, name, new_key


class NoCfssl:
    """Any call fails the test: the decision must be made without running cfssl."""

    def __getattr__(self, item):
        raise AssertionError("cfssl.%s called" % item)


def put(directory, entry, cert=None, key=None, csr=None):
    files = {}
    if cert is not None:
        files["cert.pem"] = (cert_pem(cert).encode(), 0o644)
    if key is not None:
        files["key.pem"] = (key_pem(key).encode(), 0o600)
    if csr is not None:
        files["csr.pem"] = (csr_pem(csr).encode(), 0o644)
    store.write_generation(str(directory), entry, files)


def params(directory, **overrides):
    base = {"dir": str(directory), "ca": {"cn": "etcd-ca", "names": {"O": "kubeforge"}},
            "certificates": [{"name": "node1-peer", "cn": "node1", "hosts": ["node1", "10.0.0.11"], "profile": "peer"}]}
    base.update(overrides)
    return base


@pytest.fixture()
def pki(tmp_path):
    """A CA and a matching node1-peer certificate as cfssl_cert would have written them."""
    ca_key = new_key()
    ca = make_cert(ca_key, name("etcd-ca", O="kubeforge"), ca=True, days=3650)
    put(tmp_path, "ca", ca, ca_key, make_csr(ca_key, name("etcd-ca", O="kubeforge")))
    leaf_key = new_key()
    leaf = make_cert(leaf_key, name("node1"), ca_key, ca, sans=["node1", "10.0.0.11"], days=365)
    put(tmp_path, "node1-peer", leaf, leaf_key, make_csr(leaf_key, name("node1")))
    return {"dir": tmp_path, "ca_key": ca_key, "ca": ca, "leaf_key": leaf_key}


def run_check(directory, **overrides):
    return cc.ensure(params(directory, **overrides), NoCfssl(), check_mode=True, now=NOW)


def test_matching_pki_needs_nothing(pki):
    result = run_check(pki["dir"])
    assert result["changed"] is False
    assert result["reasons"] == []
    assert result["certificates"]["node1-peer"]["info"]["sans"] == ["node1", "10.0.0.11"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"hosts": ["node1", "10.0.0.11", "10.0.0.4"]}, "node1-peer: SAN 10.0.0.4 missing"),
    ({"hosts": ["node1"]}, "node1-peer: SAN 10.0.0.11 unexpected"),
    ({"hosts": ["NODE1", "10.0.0.11"]}, None),  # DNS names compare case-insensitively
    ({"cn": "member1"}, "node1-peer: CN is 'node1', want 'member1'"),
    ({"names": {"O": "etcd"}}, "node1-peer: subject names are (none), want O=etcd"),
    ({"profile": "server"}, "node1-peer: usages are [server auth, client auth], want [server auth] (profile server)"),
    ({"key": {"algo": "rsa", "size": 2048}}, "node1-peer: key is ecdsa 256, want rsa 2048"),
    ({"expiry": "17520h"}, "node1-peer: valid for 365 days, want 17520h (730 days)"),
])
def test_each_difference_is_a_reason(pki, change, reason):
    certificate = dict(params(pki["dir"])["certificates"][0], **change)
    result = run_check(pki["dir"], certificates=[certificate])
    assert result["reasons"][:1] == ([reason] if reason else [])
    assert result["changed"] is bool(reason)


def test_renewal_window_and_expiry(pki):
    later = NOW + datetime.timedelta(days=350)
    result = cc.ensure(params(pki["dir"]), NoCfssl(), check_mode=True, now=later)
    assert result["reasons"] == ["node1-peer: expires in 15 days (renewal window 30 days)"]
    result = cc.ensure(params(pki["dir"], renew_before="240h"), NoCfssl(), check_mode=True, now=later)
    assert result["reasons"] == []
    result = cc.ensure(params(pki["dir"]), NoCfssl(), check_mode=True, now=NOW + datetime.timedelta(days=400))
    assert result["reasons"] == ["node1-peer: expired 35 days ago"]


def test_certificate_of_another_ca_is_reissued(pki):
    other_key = new_key()
    other_ca = make_cert(other_key, name("etcd-ca", O="kubeforge"), ca=True)  # same subject, another key
    leaf = make_cert(pki["leaf_key"], name("node1"), other_key, other_ca, sans=["node1", "10.0.0.11"])
    put(pki["dir"], "node1-peer", leaf, pki["leaf_key"], make_csr(pki["leaf_key"], name("node1")))
    result = run_check(pki["dir"])
    assert result["reasons"] == ["node1-peer: not signed by the CA O=kubeforge,CN=etcd-ca (issuer is O=kubeforge,CN=etcd-ca)"]
    assert result["certificates"]["node1-peer"]["new_key"] is False  # the key itself is fine


def test_mismatched_key_and_missing_files(pki):
    put(pki["dir"], "node1-peer", make_cert(pki["leaf_key"], name("node1"), pki["ca_key"], pki["ca"], sans=["node1", "10.0.0.11"]),
        new_key())
    assert run_check(pki["dir"])["reasons"][0] == "node1-peer: key does not match the certificate"
    put(pki["dir"], "node1-peer", None, pki["leaf_key"])
    assert run_check(pki["dir"])["reasons"] == ["node1-peer: certificate missing"]
    put(pki["dir"], "node1-peer", make_cert(pki["leaf_key"], name("node1"), pki["ca_key"], pki["ca"], sans=["node1", "10.0.0.11"]))
    result = run_check(pki["dir"])
    assert result["reasons"] == ["node1-peer: key missing"]
    assert result["certificates"]["node1-peer"]["new_key"] is True


def test_key_is_kept_unless_rotation_or_no_request(pki):
    certificate = dict(params(pki["dir"])["certificates"][0], hosts=["node1"])
    result = run_check(pki["dir"], certificates=[certificate])
    assert result["certificates"]["node1-peer"]["new_key"] is False
    result = run_check(pki["dir"], certificates=[certificate], rotate_keys=True)
    assert result["certificates"]["node1-peer"]["new_key"] is True
    assert "node1-peer: new key: key rotation requested" in result["reasons"]
    # rotation alone does not re-issue a certificate that is as asked
    assert run_check(pki["dir"], rotate_keys=True)["changed"] is False
    leaf = make_cert(pki["leaf_key"], name("node1"), pki["ca_key"], pki["ca"], sans=["node1", "10.0.0.11"])
    put(pki["dir"], "node1-peer", leaf, pki["leaf_key"], make_csr(new_key(), name("node1")))  # request of another key
    result = run_check(pki["dir"], certificates=[certificate])
    assert result["certificates"]["node1-peer"]["new_key"] is True
    assert "node1-peer: new key: no certificate request for the current key is stored" in result["reasons"]


def test_ca_subject_change_reissues_every_leaf_in_check_mode(pki):
    result = run_check(pki["dir"], ca={"cn": "etcd-ca-2", "names": {"O": "kubeforge"}})
    assert result["reasons"] == ["ca: CN is 'etcd-ca', want 'etcd-ca-2'", "node1-peer: the CA is new or gets a new subject"]


def test_missing_ca_and_diff(tmp_path):
    result = run_check(tmp_path)
    assert result["reasons"] == ["ca: CA missing", "node1-peer: certificate missing"]
    assert not tmp_path.joinpath("ca").exists()
    after = result["diff"][1]["after"]
    assert "sans: [10.0.0.11, node1]" in after and "issuer: (the new CA)" in after
    assert "PRIVATE" not in json.dumps(result)


@pytest.mark.parametrize(("breakage", "message"), [
    ("no_key", "a certificate without its key"),
    ("other_key", "is not the key of"),
    ("rsa", "the CA key is ecdsa 256 but ca.key asks for rsa 2048"),
])
def test_ca_is_never_replaced_silently(pki, breakage, message):
    overrides = {}
    if breakage == "no_key":
        put(pki["dir"], "ca", pki["ca"])
    elif breakage == "other_key":
        put(pki["dir"], "ca", pki["ca"], new_key())
    else:
        overrides["ca"] = {"cn": "etcd-ca", "names": {"O": "kubeforge"}, "key": {"algo": "rsa", "size": 2048}}
    with pytest.raises(cc.CertError, match=message):
        run_check(pki["dir"], **overrides)


def test_ca_renewal_keeps_the_key(pki):
    result = cc.ensure(params(pki["dir"]), NoCfssl(), check_mode=True, now=NOW + datetime.timedelta(days=3640))
    assert "ca: expires in 10 days (renewal window 30 days)" in result["reasons"]
    assert result["ca"]["new_key"] is False


class ScriptedCfssl:
    """Issues with the ``cryptography`` package the way cfssl would, recording the calls."""

    def __init__(self, ca_key):
        self.ca_key = ca_key
        self.calls = []

    def init_ca(self, spec, key_path=None):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        self.calls.append("init_ca")
        with open(key_path, "rb") as handle:
            key = load_pem_private_key(handle.read(), None)
        cert = make_cert(key, name(spec["cn"], O="kubeforge"), ca=True, days=spec["hours"] // 24)
        return {"cert": cert_pem(cert), "csr": csr_pem(make_csr(key, name(spec["cn"])))}

    def new_key(self, spec):
        self.calls.append("new_key")
        key = new_key(spec["key"]["algo"], spec["key"]["size"])
        return {"key": key_pem(key), "csr": csr_pem(make_csr(key, name(spec["cn"])))}

    def sign(self, ca_cert, ca_key, profile, spec, request_pem):
        from cryptography import x509
        self.calls.append("sign")
        request = x509.load_pem_x509_csr(request_pem.encode())
        with open(ca_cert, "rb") as handle:
            issuer = x509.load_pem_x509_certificate(handle.read())
        eku = {"peer": ("server", "client"), "server": ("server",), "client": ("client",)}[profile]

        class Public:  # make_cert only needs public_key() of the subject
            def public_key(self):
                return request.public_key()
        cert = make_cert(Public(), name(spec["cn"]), self.ca_key, issuer, sans=spec["hosts"], eku=eku, days=spec["hours"] // 24)
        return {"cert": cert_pem(cert)}


def test_reissue_swaps_the_pair_and_keeps_the_key(pki):
    cfssl = ScriptedCfssl(pki["ca_key"])
    certificate = dict(params(pki["dir"])["certificates"][0], hosts=["node1", "10.0.0.11", "10.0.0.4"])
    link = pki["dir"] / "node1-peer"
    old_generation = os.readlink(link)
    old_key = (link / "key.pem").read_bytes()
    result = cc.ensure(params(pki["dir"], certificates=[certificate]), cfssl, now=NOW)
    assert cfssl.calls == ["sign"]
    assert result["reasons"] == ["node1-peer: SAN 10.0.0.4 missing"]
    assert os.readlink(link) != old_generation
    assert (link / "key.pem").read_bytes() == old_key
    assert (pki["dir"] / old_generation / "key.pem").exists()  # the previous generation stays
    assert oct((link / "key.pem").stat().st_mode & 0o777) == "0o600"
    assert result["certificates"]["node1-peer"]["info"]["sans"] == ["node1", "10.0.0.11", "10.0.0.4"]
    again = cc.ensure(params(pki["dir"], certificates=[certificate]), NoCfssl(), now=NOW)
    assert again["changed"] is False
    # a third generation removes the first one; a forced CA re-issue keeps the CA key, the leaf gets a new one
    ca_key = (pki["dir"] / "ca" / "key.pem").read_bytes()
    forced = cc.ensure(params(pki["dir"], certificates=[certificate], force=True, rotate_keys=True), cfssl, now=NOW)
    assert forced["reasons"] == ["ca: re-issue forced", "node1-peer: re-issue forced", "node1-peer: new key: key rotation requested"]
    assert cfssl.calls == ["sign", "init_ca", "new_key", "sign"]
    assert not (pki["dir"] / old_generation).exists()
    assert (link / "key.pem").read_bytes() != old_key
    assert (pki["dir"] / "ca" / "key.pem").read_bytes() == ca_key


def test_cfssl_result_that_still_differs_is_refused(pki):
    class Sloppy(ScriptedCfssl):
        def sign(self, ca_cert, ca_key, profile, spec, request_pem):
            return super().sign(ca_cert, ca_key, profile, dict(spec, hosts=spec["hosts"][:-1]), request_pem)
    certificate = dict(params(pki["dir"])["certificates"][0], hosts=["node1", "10.0.0.11", "10.0.0.4"])
    before = os.readlink(pki["dir"] / "node1-peer")
    with pytest.raises(cc.CertError, match="still differs from the request: SAN 10.0.0.4 missing"):
        cc.ensure(params(pki["dir"], certificates=[certificate]), Sloppy(pki["ca_key"]), now=NOW)
    assert os.readlink(pki["dir"] / "node1-peer") == before


@pytest.mark.parametrize(("override", "message"), [
    ({"certificates": [{"name": "a", "hosts": ["node_1"]}]}, r"certificates\[0\].hosts\[0\]: 'node_1' is neither a DNS name nor an IP"),
    ({"certificates": [{"name": "a", "hosts": "node1"}]}, r"certificates\[0\].hosts: must be a list, got a string"),
    ({"certificates": [{"name": "../x"}]}, r"certificates\[0\].name: certificate name '../x' must not contain '/'"),
    ({"certificates": [{"name": "ca"}]}, "reserved for the CA"),
    ({"certificates": [{"name": "a"}, {"name": "a"}]}, "used twice"),
    ({"certificates": [{"name": "a", "profile": "mixed"}]}, r"profile: must be one of client, peer, server"),
    ({"certificates": [{"name": "a", "key": {"algo": "rsa", "size": 1024}}]}, "rsa keys can be 2048/3072/4096 bits, got 1024"),
    ({"certificates": [{"name": "a", "expiry": "1y"}]}, r"expiry: must be a number of hours as cfssl writes it"),
    ({"certificates": [{"name": "a", "names": {"CN": "x"}}]}, "unknown name attribute 'CN'"),
    ({"ca": {"names": {"O": "x"}}}, "ca.cn: must be a string, got null"),
    ({"dir": "pki"}, "dir: must be an absolute path"),
])
def test_bad_input_names_the_option(tmp_path, override, message):
    with pytest.raises(InputError, match=message):
        normalize(params(tmp_path, **override))
    assert list(tmp_path.iterdir()) == []


def test_wildcard_and_ip_hosts_are_normalised(tmp_path):
    spec = normalize(params(tmp_path, certificates=[{"name": "a", "hosts": ["*.etcd.lab.invalid", "fd00:0::1", "Node1", "node1"]}]))
    assert spec["certificates"][0]["hosts"] == ["*.etcd.lab.invalid", "fd00::1", "node1"]


def test_cfssl_runner_argv_and_errors(tmp_path):
    seen = {}

    def run(argv):
        seen["argv"] = argv
        seen["files"] = {os.path.basename(a): open(a).read() for a in argv if a.startswith(str(tmp_path)) and os.path.isfile(a)}
        return 0, json.dumps({"cert": "CERT"}), "2026/12/01 [INFO] signed certificate"

    spec = normalize(params(tmp_path))["certificates"][0]
    runner = Cfssl("/usr/bin/cfssl", run, str(tmp_path))
    assert runner.sign("/p/ca/cert.pem", "/p/ca/key.pem", "peer", spec, "CSR") == {"cert": "CERT"}
    argv = seen["argv"]
    assert argv[:10] == ["/usr/bin/cfssl", "sign", "-ca", "/p/ca/cert.pem", "-ca-key", "/p/ca/key.pem", "-config", argv[7],
                         "-profile", "peer"]
    assert argv[10:12] == ["-hostname", "node1,10.0.0.11"]
    assert json.loads(seen["files"]["config.json"]) == signing_config("peer", "8760h")
    assert json.loads(seen["files"]["subject.json"]) == {"CN": "node1", "names": []}
    assert seen["files"]["request.csr"] == "CSR"
    assert list(tmp_path.iterdir()) == []  # request files are removed

    def failing(argv):
        return 1, '{"key": "-----BEGIN EC PRIVATE KEY-----SECRET"}', "[ERROR] cannot parse CSR"
    with pytest.raises(CfsslError) as raised:
        Cfssl("cfssl", failing, str(tmp_path)).new_key(spec)
    assert "cannot parse CSR" in str(raised.value) and "SECRET" not in str(raised.value)
