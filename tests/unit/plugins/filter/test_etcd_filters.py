# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd role's decisions: members from the inventory, how each member starts, which ones restart, the config."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.etcd import (
    etcd_certificates_changed, etcd_config, etcd_member_certificates, etcd_members, etcd_plan, etcd_restarts, etcd_running,
)

HOSTVARS = {"n1": {"ansible_host": "10.0.0.11"}, "n2": {"ansible_host": "10.0.0.12", "etcd_address": "10.1.0.12"},
            "n3": {"ansible_host": "10.0.0.13"}, "n4": {"ansible_host": "fd00::14"}}
MEMBERS = etcd_members(["n1", "n2", "n3"], HOSTVARS)
NEW = "n1=https://10.0.0.11:2380,n2=https://10.1.0.12:2380,n3=https://10.0.0.13:2380"


def preflight(has_data=True, active=True, bootstrap=None):
    return {"has_data": has_data, "service": {"active_state": "active" if active else "inactive"},
            "bootstrap": bootstrap if bootstrap is not None else ({"initial-cluster": NEW, "initial-cluster-state": "new",
                                                                   "initial-cluster-token": "tok"} if has_data else {})}


def test_members_from_the_inventory():
    assert MEMBERS[1] == {"name": "n2", "address": "10.1.0.12", "client_url": "https://10.1.0.12:2379",
                          "peer_url": "https://10.1.0.12:2380"}
    assert etcd_members(["n4"], HOSTVARS, 12379, 12380)[0]["client_url"] == "https://[fd00::14]:12379"
    with pytest.raises(AnsibleFilterError, match=r"etcd member n9: its address 'n9' .* must be an IP address"):
        etcd_members(["n9"], {"n9": {}})


def test_new_cluster_bootstraps_every_member():
    plan = etcd_plan(MEMBERS, {}, [], "tok")
    assert plan["joiners"] == []
    assert plan["n3"] == {"action": "bootstrap", "bootstrap": {"initial-cluster": NEW, "initial-cluster-state": "new",
                                                               "initial-cluster-token": "tok"}}


def test_members_with_data_keep_their_bootstrap_keys_and_new_hosts_join_in_order():
    old = {"initial-cluster": "n1=https://10.0.0.11:2380", "initial-cluster-state": "new", "initial-cluster-token": "first"}
    hostvars = {"n1": {"__etcd_preflight": preflight(bootstrap=old)}, "n2": {"__etcd_preflight": preflight(False, False)},
                "n3": {"__etcd_preflight": preflight(False, False)}}
    live = [{"name": "n1", "peer_urls": ["https://10.0.0.11:2380"], "id": "a"}]
    plan = etcd_plan(MEMBERS, hostvars, live, "tok")
    assert plan["n1"] == {"action": "keep", "bootstrap": old}
    assert plan["joiners"] == ["n2", "n3"]
    assert plan["n2"]["bootstrap"] == {"initial-cluster": "n1=https://10.0.0.11:2380,n2=https://10.1.0.12:2380",
                                       "initial-cluster-state": "existing", "initial-cluster-token": "tok"}
    assert plan["n3"]["bootstrap"]["initial-cluster"] == "n1=https://10.0.0.11:2380,n2=https://10.1.0.12:2380,n3=https://10.0.0.13:2380"


def test_a_join_left_half_done_uses_the_live_entry():
    hostvars = {"n1": {"__etcd_preflight": preflight()}, "n2": {"__etcd_preflight": preflight()}}
    live = [{"name": "n1", "peer_urls": ["https://10.0.0.11:2380"]}, {"name": "n2", "peer_urls": ["https://10.1.0.12:2380"]},
            {"name": "", "peer_urls": ["https://10.0.0.13:2380"], "id": "c"}]  # n3 added as learner, never started
    plan = etcd_plan(MEMBERS, hostvars, live, "tok")
    assert plan["joiners"] == ["n3"]
    assert plan["n3"]["bootstrap"]["initial-cluster"] == NEW
    with pytest.raises(AnsibleFilterError, match="unstarted member with peer URLs .*10.9.9.9.* not in the inventory"):
        etcd_plan(MEMBERS, hostvars, live + [{"name": "", "peer_urls": ["https://10.9.9.9:2380"], "id": "d"}], "tok")


def test_running_members_and_restarts_leader_last():
    hostvars = {name: {"__etcd_preflight": preflight()} for name in ("n1", "n2", "n3")}
    hostvars["n3"]["__etcd_preflight"] = preflight(active=False)
    assert etcd_running(MEMBERS, hostvars) == ["n1", "n2"]
    hostvars["n3"]["__etcd_preflight"] = preflight()
    for name in ("n1", "n2", "n3"):
        hostvars[name]["__etcd_files"] = {"changed": True, "changed_names": ["config"]}
    # a changed data directory alone is no restart cause
    hostvars["n2"]["__etcd_files"] = {"changed": True, "changed_names": ["data_dir", "config", "unit"]}
    hostvars["n2"]["__etcd_certs"] = {"changed": True, "ca_changed": False}
    assert etcd_restarts(MEMBERS, hostvars, "n1") == [
        {"name": "n2", "reasons": ["configuration", "systemd unit"]}, {"name": "n3", "reasons": ["configuration"]},
        {"name": "n1", "reasons": ["configuration"]}]
    # a new leaf certificate alone restarts nothing (etcd reads it for every new connection); a new CA does
    hostvars = {name: {"__etcd_preflight": preflight(), "__etcd_certs": {"changed": True, "ca_changed": name == "n3"}}
                for name in ("n1", "n2", "n3")}
    assert etcd_restarts(MEMBERS, hostvars, "n3") == [{"name": "n3", "reasons": ["CA certificate"]}]
    # members that were not running are started, not restarted; hosts outside the play are skipped
    assert etcd_restarts(MEMBERS, {"n1": {"__etcd_preflight": preflight(active=False), "__etcd_files": {"changed_names": ["unit"]}}}) == []


def test_config_file():
    settings = {"data_dir": "/var/lib/etcd/data", "pki_dir": "/etc/etcd/pki/current", "metrics_url": "http://127.0.0.1:2381",
                "log_level": "warn", "heartbeat_interval": "150", "election_timeout": 1500, "extra": {"snapshot-count": 5000}}
    bootstrap = {"initial-cluster": NEW, "initial-cluster-state": "new", "initial-cluster-token": "tok"}
    config = etcd_config(MEMBERS[0], bootstrap, settings)
    assert list(config)[:9] == ["name", "data-dir", "listen-peer-urls", "listen-client-urls", "advertise-client-urls",
                                "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state", "initial-cluster-token"]
    assert config["listen-client-urls"] == "https://10.0.0.11:2379,https://127.0.0.1:2379"
    assert config["client-transport-security"] == {"cert-file": "/etc/etcd/pki/current/server.pem",
                                                   "key-file": "/etc/etcd/pki/current/server-key.pem",
                                                   "trusted-ca-file": "/etc/etcd/pki/current/ca.pem", "client-cert-auth": True}
    assert config["peer-transport-security"]["client-cert-auth"] is True
    assert config["listen-metrics-urls"] == "http://127.0.0.1:2381"
    assert (config["heartbeat-interval"], config["election-timeout"], config["snapshot-count"]) == (150, 1500, 5000)
    assert "listen-metrics-urls" not in etcd_config(MEMBERS[0], bootstrap, dict(settings, metrics_url=""))
    assert etcd_config(MEMBERS[0], bootstrap, dict(settings, listen_localhost=False))["listen-client-urls"] == "https://10.0.0.11:2379"
    with pytest.raises(AnsibleFilterError, match="etcd_config_extra sets client-transport-security, data-dir, which the role manages"):
        etcd_config(MEMBERS[0], bootstrap, dict(settings, extra={"data-dir": "/x", "client-transport-security": {}}))


def test_member_certificates_for_every_member_with_their_own_sans():
    hostvars = {"n1": {"ansible_host": "10.0.0.1"},
                "n2": {"ansible_host": "10.0.0.2", "etcd_extra_sans": ["etcd.example"], "etcd_listen_localhost": False}}
    members = etcd_members(["n1", "n2"], hostvars)
    requests = {r["name"]: r for r in etcd_member_certificates(members, hostvars, {"O": "k"}, True, ["vip.example"], [])}
    assert sorted(requests) == ["n1-admin", "n1-peer", "n1-server", "n2-admin", "n2-peer", "n2-server"]
    assert requests["n1-server"]["hosts"] == ["n1", "10.0.0.1", "127.0.0.1", "localhost", "vip.example"]
    # n2's own inventory values win over the role's
    assert requests["n2-server"]["hosts"] == ["n2", "10.0.0.2", "etcd.example"]
    assert requests["n2-peer"] == {"name": "n2-peer", "cn": "n2", "profile": "peer", "names": {"O": "k"}, "hosts": ["n2", "10.0.0.2"]}
    assert requests["n1-admin"]["cn"] == "etcd-admin" and "hosts" not in requests["n1-admin"]


def test_member_certificates_refuse_a_bad_san_list_naming_the_member():
    hostvars = {"n1": {"ansible_host": "10.0.0.1", "etcd_extra_sans": "etcd.example"}}
    with pytest.raises(AnsibleFilterError, match="etcd member n1: etcd_extra_sans must be a list"):
        etcd_member_certificates(etcd_members(["n1"], hostvars), hostvars, {}, True, [], [])


def test_certificates_changed_per_member():
    result = {"ca": {"changed": False}, "certificates": {"n1-server": {"changed": True}, "n2-server": {"changed": False}}}
    assert etcd_certificates_changed(result, "n1") is True
    assert etcd_certificates_changed(result, "n2") is False
    assert etcd_certificates_changed(dict(result, ca={"changed": True}), "n2") is True
    assert etcd_certificates_changed({"skipped": True}, "n1") is False


def test_member_certificates_read_listen_localhost_as_ansible_does():
    hostvars = {"n1": {"ansible_host": "10.0.0.1", "etcd_listen_localhost": "no"}}
    requests = etcd_member_certificates(etcd_members(["n1"], hostvars), hostvars, {}, True, [], [])
    assert requests[0]["hosts"] == ["n1", "10.0.0.1"]
    with pytest.raises(AnsibleFilterError, match="etcd member n1: etcd_listen_localhost must be true or false, got 'maybe'"):
        etcd_member_certificates(etcd_members(["n1"], {"n1": {"ansible_host": "10.0.0.1"}}), {"n1": {"ansible_host": "10.0.0.1"}}, {}, "maybe", [], [])
