# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_certs: a wrong pair is never installed, a set is switched atomically, unchanged sets are left alone."""

from __future__ import annotations

import os

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _etcd_certs as ec
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError
from x509_factory import cert_pem, key_pem, make_cert, name, new_key


@pytest.fixture(scope="module")
def pki():
    ca_key = new_key()
    ca = make_cert(ca_key, name("etcd-ca"), ca=True)
    server_key = new_key()
    server = make_cert(server_key, name("node1"), ca_key, ca, sans=["node1", "10.0.0.11"])
    return {"ca": cert_pem(ca), "ca_key": ca_key, "ca_cert": ca, "cert": cert_pem(server), "key": key_pem(server_key)}


def params(directory, pki, **item):
    entry = {"name": "server", "cert": pki["cert"], "key": pki["key"]}
    entry.update(item)
    return {"dir": str(directory), "ca": pki["ca"], "certificates": [entry]}


def test_install_then_unchanged_then_switch(tmp_path, pki):
    uid, gid = os.getuid(), os.getgid()
    first = ec.ensure(params(tmp_path, pki), False, uid, gid)
    assert first["changed"] is True and first["changed_files"] == ["ca.pem", "server-key.pem", "server.pem"]
    assert first["files"]["server"] == {"cert": str(tmp_path / "current/server.pem"), "key": str(tmp_path / "current/server-key.pem")}
    assert oct((tmp_path / "current/server-key.pem").stat().st_mode & 0o777) == "0o600"
    assert "the private key of server.pem" in first["diff"]["after"] and "PRIVATE" not in repr(first)
    assert ec.ensure(params(tmp_path, pki), False, uid, gid)["changed"] is False
    generation = os.readlink(tmp_path / "current")
    new_cert = cert_pem(make_cert(new_key(), name("node1"), pki["ca_key"], pki["ca_cert"], sans=["node1"]))
    with pytest.raises(InputError, match=r"certificates\[0\].key: is not the key of the certificate server"):
        ec.ensure(params(tmp_path, pki, cert=new_cert), False, uid, gid)
    assert os.readlink(tmp_path / "current") == generation
    server_key = new_key()
    replaced = cert_pem(make_cert(server_key, name("node1"), pki["ca_key"], pki["ca_cert"], sans=["node1", "extra"]))
    check = ec.ensure(params(tmp_path, pki, cert=replaced, key=key_pem(server_key)), True, uid, gid)
    assert check["changed"] is True and os.readlink(tmp_path / "current") == generation
    result = ec.ensure(params(tmp_path, pki, cert=replaced, key=key_pem(server_key)), False, uid, gid)
    assert result["changed_files"] == ["server-key.pem", "server.pem"] and result["ca_changed"] is False
    assert os.readlink(tmp_path / "current") != generation
    assert (tmp_path / generation / "server.pem").read_text() == pki["cert"]  # the previous set stays complete


def test_refuses_a_certificate_of_another_ca_and_a_non_ca(tmp_path, pki):
    other_key = new_key()
    other_ca = make_cert(other_key, name("etcd-ca"), ca=True)
    key = new_key()
    foreign = cert_pem(make_cert(key, name("node1"), other_key, other_ca))
    with pytest.raises(InputError, match=r"certificates\[0\].cert: server \(CN=node1\) is not signed by the CA given in ca"):
        ec.ensure(params(tmp_path, pki, cert=foreign, key=key_pem(key)), False)
    with pytest.raises(InputError, match="is not a CA certificate"):
        ec.ensure(dict(params(tmp_path, pki), ca=pki["cert"]), False)
    with pytest.raises(InputError, match=r"certificates\[0\].name: 'ca' is reserved for the CA"):
        ec.ensure(params(tmp_path, pki, name="ca"), False)
    assert list(tmp_path.iterdir()) == []


def test_wrong_mode_is_repaired_with_a_new_generation(tmp_path, pki):
    ec.ensure(params(tmp_path, pki), False)
    os.chmod(tmp_path / "current/server-key.pem", 0o644)
    result = ec.ensure(params(tmp_path, pki), False)
    assert result["changed"] is True and result["changed_files"] == []
    assert oct((tmp_path / "current/server-key.pem").stat().st_mode & 0o777) == "0o600"
