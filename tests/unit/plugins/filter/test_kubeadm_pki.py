# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The discovery CA pin and the kubelet serving CSR decisions, on certificates made here with cryptography."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.kubeadm_pki import FilterModule, ca_cert_hash, kubelet_serving_csrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# A known certificate: kubeadm's CA shape (CN=kubernetes, RSA 2048, self-signed), made once with openssl; its pin was
# computed with upstream's documented pipeline (openssl x509 -pubkey | openssl rsa -pubin -outform der | sha256sum).
KNOWN_CA = """-----BEGIN CERTIFICATE-----
MIIDCzCCAfOgAwIBAgIUbaCu0VsAEMdorWaVgmidnpGD6Z4wDQYJKoZIhvcNAQEL
BQAwFTETMBEGA1UEAwwKa3ViZXJuZXRlczAeFw0yNjEyMDExODA3MzhaFw0zNjEx
MjgxODA3MzhaMBUxEzARBgNVBAMMCmt1YmVybmV0ZXMwggEiMA0GCSqGSIb3DQEB
AQUAA4IBDwAwggEKAoIBAQCog2mtTa4zQ/zuqshdD+HybKwm7BjoonCm9fSx7D7W
zx/VbKKKD4CWx4D4GV8G4nZxZL41CbPlnC6+mO0mV+XLwgfn4uAIfnMn5DkDUPZ7
u9ChU7DWPkHg57CWNgD4lTUmp/9BcLScZws7JY05i0+AA2ZQgf4zjw4BrjzsBVnU
2bXMUd73A5W94ulzDwSMSREB0D9btjlOGCpB4hwuIlg3ikL/hVqQi5pKs2gzVbuE
ddMefWfyjyYmzdROJl+Io2sfDdOBfsfAkIHaPwNwnkQ3PkvPMJzZ79qZBH6ezoLf
rBDC/5Ow/4kC9at9UviWWearTFqaR93rGEJ+qC/gorhjAgMBAAGjUzBRMB0GA1Ud
DgQWBBSh4azN+ONl3xOZypa9SFj2fvmF0jAfBgNVHSMEGDAWgBSh4azN+ONl3xOZ
ypa9SFj2fvmF0jAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQCe
ZrPBUHa90n9OETPV5EhyL5XdxdkVJGEOU51st/+EESum0dva3hQYPBR6PjRB5vuZ
Q0tEaHetScSNPJw+Hi0etyIXRRRJgDS97IlMPCXzSlFJa4sOi9fyGBjtBjUwMsXR
d6hqS8qy+dw1+qwCOOdqZXQL0IwJJz5tOyAOpQZ5V11+gW9y5HCttLsdJBOJr7yN
LfXFSdbjfsosBAszAC6CLEPR8fK7ox48ezf3oAn+VmUHBk9OI67KZ3TLlzo8B5pP
jHFxrSQPbRkwm3//2+Zh85ehhXPNUDWSFUJ4+Shxcb70i7GmgkcyPlpLew3zfBOs
HxOzhp90VDpH8R+zJpZ8
-----END CERTIFICATE-----
"""
KNOWN_PIN = "sha256:b8553cf45fe870bf15e4956a384885a615a45610b91c1a7dde5759c1937affe6"


def make_key(kind="rsa"):
    return rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())


def make_ca(key, name="kubernetes"):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def spki_pin(key):
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def test_ca_cert_hash_of_a_known_certificate():
    assert ca_cert_hash(KNOWN_CA) == KNOWN_PIN
    assert ca_cert_hash(KNOWN_CA.encode()) == KNOWN_PIN


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_ca_cert_hash_is_the_sha256_of_the_subject_public_key_info(kind):
    key = make_key(kind)
    assert ca_cert_hash(make_ca(key)) == spki_pin(key)


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl CLI not installed")
def test_ca_cert_hash_matches_upstreams_openssl_pipeline(tmp_path):
    """The command kubeadm's documentation gives for --discovery-token-ca-cert-hash, run on a CA made by openssl."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kubernetes", "-days", "1",
                    "-keyout", str(tmp_path / "ca.key"), "-out", str(tmp_path / "ca.crt")], check=True, capture_output=True)
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(tmp_path / "ca.crt")], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True).stdout
    assert ca_cert_hash((tmp_path / "ca.crt").read_text()) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_ca_cert_hash_uses_the_first_certificate_and_refuses_garbage():
    key = make_key("ec")
    bundle = make_ca(key) + make_ca(make_key("ec"), "other")
    assert ca_cert_hash(bundle) == spki_pin(key)
    with pytest.raises(AnsibleFilterError, match="not a PEM certificate"):
        ca_cert_hash("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    with pytest.raises(AnsibleFilterError, match="/etc/kubernetes/pki/ca.crt"):
        ca_cert_hash("")


def csr_item(name, node, dns=(), ips=(), cn=None, org="system:nodes", signer="kubernetes.io/kubelet-serving",
             username=None, conditions=None, groups=("system:nodes", "system:authenticated")):
    key = make_key("ec")
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                         x509.NameAttribute(NameOID.COMMON_NAME, cn or "system:node:" + node)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    pem = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return {"kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"signerName": signer, "username": username or "system:node:" + node, "groups": list(groups),
                     "request": base64.b64encode(pem).decode()},
            "status": {"conditions": conditions} if conditions else {}}


NODES = {"node1": {"addresses": ["10.0.0.11"]}, "node2": {"addresses": ["10.0.0.12", "node2.lab.internal"], "names": ["n2"]}}


def test_only_pending_serving_csrs_of_inventory_nodes_with_their_own_names_are_approved():
    items = [
        csr_item("csr-good1", "node1", dns=["node1"], ips=["10.0.0.11"]),
        csr_item("csr-good2", "node2", dns=["node2", "n2", "NODE2.lab.internal"], ips=["10.0.0.12"]),
        csr_item("csr-stranger", "node9", dns=["node9"], ips=["10.0.0.19"]),
        csr_item("csr-wrong-ip", "node1", dns=["node1"], ips=["10.0.0.12"]),
        csr_item("csr-wrong-dns", "node2", dns=["kubernetes.default"], ips=["10.0.0.12"]),
        csr_item("csr-wrong-cn", "node1", dns=["node1"], cn="system:node:node2"),
        csr_item("csr-wrong-org", "node1", dns=["node1"], org="system:masters"),
        csr_item("csr-no-group", "node1", dns=["node1"], groups=("system:authenticated",)),
        csr_item("csr-no-san", "node1"),
        csr_item("csr-approved", "node1", dns=["node1"], conditions=[{"type": "Approved"}]),
        csr_item("csr-denied", "node1", dns=["node1"], conditions=[{"type": "Denied"}]),
        csr_item("csr-client", "node1", dns=["node1"], signer="kubernetes.io/kube-apiserver-client-kubelet"),
        {"kind": "Node", "metadata": {"name": "node1"}},
    ]
    decision = kubelet_serving_csrs({"kind": "List", "items": items}, NODES)
    assert decision["approve"] == ["csr-good1", "csr-good2"]
    reasons = {r["name"]: r["reason"] for r in decision["refused"]}
    assert set(reasons) == {"csr-stranger", "csr-wrong-ip", "csr-wrong-dns", "csr-wrong-cn", "csr-wrong-org", "csr-no-group", "csr-no-san"}
    assert reasons["csr-stranger"] == "requested by 'system:node:node9', not by a node of the inventory"
    assert reasons["csr-wrong-ip"] == "requests names that are not node node1's: 10.0.0.12"
    assert reasons["csr-wrong-dns"] == "requests names that are not node node2's: kubernetes.default"
    assert "CN=system:node:node2" in reasons["csr-wrong-cn"] and "O=system:masters" in reasons["csr-wrong-org"]


def test_kubelet_serving_csrs_refuses_wrong_input_types():
    with pytest.raises(AnsibleFilterError, match="kubectl's JSON list"):
        kubelet_serving_csrs(["items"], NODES)
    with pytest.raises(AnsibleFilterError, match="not JSON"):
        kubelet_serving_csrs("No resources found", NODES)
    assert kubelet_serving_csrs("{\"items\": []}", NODES) == {"approve": [], "refused": []}


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"ca_cert_hash", "kubelet_serving_csrs"}
