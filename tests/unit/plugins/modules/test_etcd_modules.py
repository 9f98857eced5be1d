# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thin etcd module files: option handling, messages, no secret in the result."""

from __future__ import annotations

import json

from ansible_collections.kubeforge.cluster.plugins.modules import cfssl_cert, etcd_certs, etcd_member, etcd_preflight, etcd_snapshot
from module_harness import ExitJson, FailJson, call_main
from x509_factory import cert_pem, key_pem, make_cert, name, new_key


def test_cfssl_cert_without_cfssl(tmp_path):
    kind, result = call_main(cfssl_cert.main, {"dir": str(tmp_path / "pki"), "ca": {"cn": "etcd-ca"}, "cfssl_path": "kubeforge-no-such-cfssl"})
    assert kind is FailJson
    assert result["msg"] == ("cfssl_path: cfssl (kubeforge-no-such-cfssl) was not found on this host; install it (Debian/Ubuntu package "
                             "golang-cfssl) or set cfssl_path to the binary")
    assert not (tmp_path / "pki").exists()


def test_cfssl_cert_bad_host_fails_before_anything(tmp_path):
    fake = tmp_path / "cfssl"
    fake.write_text("#!/bin/sh\nexit 99\n")
    fake.chmod(0o755)
    kind, result = call_main(cfssl_cert.main, {"dir": str(tmp_path / "pki"), "ca": {"cn": "etcd-ca"}, "cfssl_path": str(fake),
                                               "certificates": [{"name": "n1", "hosts": ["10.0.0.1", "under_score"]}]})
    assert kind is FailJson
    assert result["msg"] == "certificates[0].hosts[1]: 'under_score' is neither a DNS name nor an IP address (a CSR host must be one)"
    assert not (tmp_path / "pki").exists()


def test_etcd_certs_module_hides_the_key(tmp_path):
    ca_key = new_key()
    ca = make_cert(ca_key, name("etcd-ca"), ca=True)
    key = new_key()
    cert = make_cert(key, name("node1"), ca_key, ca, sans=["node1"])
    args = {"dir": str(tmp_path), "ca": cert_pem(ca), "certificates": [{"name": "server", "cert": cert_pem(cert), "key": key_pem(key)}]}
    kind, result = call_main(etcd_certs.main, dict(args, owner="root", group="root"), diff=True)
    assert kind is ExitJson, result
    assert result["changed"] is True and result["restart_required"] is True  # a new CA: etcd reads it at start only
    assert "PRIVATE KEY" not in json.dumps(result)
    kind, result = call_main(etcd_certs.main, dict(args, owner="kubeforge-no-such-user"))
    assert (kind, result["msg"]) == (FailJson, "owner: no user 'kubeforge-no-such-user' on this host")


def test_etcd_preflight_reports_the_host(tmp_path):
    (tmp_path / "data/member/wal").mkdir(parents=True)
    (tmp_path / "data/member/wal/0.wal").write_bytes(b"x")
    kind, result = call_main(etcd_preflight.main, {"addresses": ["127.0.0.1", "192.0.2.123"], "data_dir": str(tmp_path / "data"),
                                                   "config_file": str(tmp_path / "none.yml"), "etcd_path": str(tmp_path / "etcd"),
                                                   "cluster_size": 4})
    assert kind is ExitJson, result
    assert result["missing_addresses"] == ["192.0.2.123"]
    assert result["has_data"] is True and result["bootstrap"] == {} and result["etcd_version"] is None
    assert any("an even number tolerates as many failed members as 3 (quorum is 3, so 1 may fail)" in w for w in result["warnings"])
    kind, result = call_main(etcd_preflight.main, {"addresses": ["node1"], "data_dir": "/x", "config_file": "/y"})
    assert (kind, result["msg"]) == (FailJson, "addresses[0]: 'node1' is not an IP address")


def test_etcd_member_and_snapshot_options(tmp_path):
    kind, result = call_main(etcd_member.main, {"name": "n1", "state": "present", "endpoints": ["https://127.0.0.1:2379"],
                                                "ca_file": "/x", "cert_file": "/y", "key_file": "/z"})
    assert kind is FailJson and "state is present but all of the following are missing: peer_urls, client_url" in result["msg"]
    kind, result = call_main(etcd_member.main, {"name": "-n1", "state": "absent", "endpoints": ["https://127.0.0.1:2379"],
                                                "ca_file": "/x", "cert_file": "/y", "key_file": "/z"})
    assert (kind, result["msg"]) == (FailJson, "name: member name '-n1' must not start with '-' (it would be read as a command option)")
    kind, result = call_main(etcd_snapshot.main, {"state": "staged", "path": str(tmp_path / "s.db")})
    assert (kind, result["msg"]) == (FailJson, "state=staged needs sha256, data_dir, name, initial_cluster, initial_cluster_token, peer_urls")
