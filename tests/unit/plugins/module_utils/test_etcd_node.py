# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What etcd_preflight reads from a host, on fake /proc trees and files."""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_node import (
    has_member_data,
    host_addresses,
    local_networks,
    missing_addresses,
    read_bootstrap,
)

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.179.210.0/24 2 0 2
        |-- 10.179.210.0
           /24 link UNICAST
        |-- 10.179.210.11
           /32 host LOCAL
        |-- 10.179.210.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.0
           /8 host LOCAL
        |-- 127.0.0.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 10.179.210.11
           /32 host LOCAL
"""
IF_INET6 = "00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000011 02 40 00 80     eth0\n"


def fake_proc(tmp_path):
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/fib_trie").write_text(FIB_TRIE)
    (tmp_path / "proc/net/if_inet6").write_text(IF_INET6)
    return str(tmp_path)


def test_local_addresses(tmp_path):
    networks = local_networks(fake_proc(tmp_path))
    assert missing_addresses(["10.179.210.11", "127.0.0.12", "fd00::11", "::1"], networks) == []
    assert missing_addresses(["10.179.210.12", "10.179.210.255", "fd00::12"], networks) == ["10.179.210.12", "10.179.210.255", "fd00::12"]
    assert host_addresses(networks) == ["10.179.210.11", "127.0.0.0/8", "127.0.0.1", "::1", "fd00::11"]


def test_bootstrap_keys_of_the_role_config(tmp_path):
    path = tmp_path / "etcd.conf.yml"
    path.write_text("# Managed by kubeforge.cluster.etcd\nname: node1\ninitial-cluster: node1=https://10.0.0.11:2380,node2=https://10.0.0.12:2380\n"
                    "initial-cluster-state: new\ninitial-cluster-token: '0123'\nclient-transport-security:\n  cert-file: /x\n")
    assert read_bootstrap(str(path)) == {"initial-cluster": "node1=https://10.0.0.11:2380,node2=https://10.0.0.12:2380",
                                         "initial-cluster-state": "new", "initial-cluster-token": "0123"}
    assert read_bootstrap(str(tmp_path / "missing.yml")) == {}


def test_member_data(tmp_path):
    assert has_member_data(str(tmp_path)) is False
    (tmp_path / "member/wal").mkdir(parents=True)
    assert has_member_data(str(tmp_path)) is False
    (tmp_path / "member/wal/0000000000000000-0000000000000000.wal").write_bytes(b"x")
    assert has_member_data(str(tmp_path)) is True
