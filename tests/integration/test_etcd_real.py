# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd role's building blocks against real etcd 3.4 (bookworm) and 3.5 (trixie) clusters on this host.

Certificates from the real cfssl through ``cfssl_cert``, installed by ``etcd_certs``, configs from the role's
``etcd_config`` filter, and the membership logic of ``etcd_member``/``etcd_health`` driving real member
processes (``etcd_harness.ProcessService`` stands in for the systemd unit). A writer loop runs during every
change and must lose no acknowledged write; its figures are printed (``pytest -s``).
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
from ansible_collections.kubeforge.cluster.plugins.filter.etcd import etcd_plan
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cfssl_cert
from ansible_collections.kubeforge.cluster.plugins.module_utils import _etcd_cluster as cluster
from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl import Cfssl
from ansible_collections.kubeforge.cluster.plugins.module_utils._etcd_node import read_bootstrap
from ansible_collections.kubeforge.cluster.plugins.modules import etcd_health
from etcd_harness import SHORT_TIMEOUT, EtcdHarness, run
from etcd_writer import Writer
from module_harness import ExitJson, FailJson, call_main, patch_module_exits

pytestmark = [pytest.mark.real_binary, pytest.mark.daemon]

SUITES = {"bookworm": ("3.4", 1), "trixie": ("3.5", 2)}
THREE = ["m1", "m2", "m3"]


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    return patch_module_exits(monkeypatch)


@pytest.fixture(scope="module", params=sorted(SUITES))
def etcd(request, tmp_path_factory):
    version, subnet = SUITES[request.param]
    with EtcdHarness(tmp_path_factory.mktemp("etcd-%s" % request.param), request.param, subnet) as harness:
        harness.version = version
        harness.bootstrap(THREE)
        yield harness


class WriterThread:
    """The writer loop of etcd_writer.py in a thread, against the given members."""

    def __init__(self, etcd, names, label):
        pki = etcd.workdir / names[0] / "pki" / "current"
        # Debian's etcd 3.4 is built without the JSON gateway: write with etcdctl there
        self.writer = Writer(etcd.endpoints(names), str(pki / "ca.pem"), str(pki / "admin.pem"), str(pki / "admin-key.pem"),
                             "/writer/%s/%d" % (label.split()[0], time.time_ns()),
                             etcdctl=etcd.etcdctl_bin if etcd.version == "3.4" else None)
        self.label = label
        self.thread = threading.Thread(target=self.writer.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self.writer.stop_event.set()
        self.thread.join(10)
        self.figures = self.writer.report()
        print("\n%s: writes %d, acknowledged %d, lost %d, longest stall %ss%s" % (
            self.label, self.figures["writes"], self.figures["acknowledged"], self.figures["lost"], self.figures["longest_stall_s"],
            "; errors %s" % self.figures["errors"] if self.figures["errors"] else ""))


def test_health_module_sees_three_healthy_members(etcd):
    pki = etcd.workdir / "m1" / "pki" / "current"
    kind, result = call_main(etcd_health.main, {
        "name": "m1", "endpoints": etcd.endpoints(THREE), "ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "admin.pem"),
        "key_file": str(pki / "admin-key.pem"), "etcdctl_path": etcd.etcdctl_bin, "expected_members": THREE})
    assert kind is ExitJson, result
    assert result["healthy"] is True
    members = result["cluster"]["members"]
    assert sorted(m["name"] for m in members) == THREE
    assert all(m["healthy"] and m["version"].startswith(etcd.version) for m in members)
    assert sum(m["is_leader"] for m in members) == 1
    kind, result = call_main(etcd_health.main, {
        "name": "m1", "endpoints": etcd.endpoints(THREE), "ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "admin.pem"),
        "key_file": str(pki / "admin-key.pem"), "etcdctl_path": etcd.etcdctl_bin, "expected_members": THREE + ["m4"]})
    assert kind is FailJson
    assert result["msg"] == ("etcd cluster seen from member m1: member list is [m1, m2, m3], the etcd hosts are [m1, m2, m3, m4]: "
                             "m4 not members")


def test_clients_without_a_certificate_of_the_ca_are_refused(etcd, tmp_path):
    endpoint = etcd.members["m1"]["client_url"]
    pki = etcd.workdir / "m1" / "pki" / "current"
    rc, _out, err = run([etcd.etcdctl_bin, "--endpoints=" + endpoint, "--cacert", str(pki / "ca.pem"), "--dial-timeout=2s",
                         "--command-timeout=3s", "put", "intruder", "1"])
    assert rc != 0, "a client without a certificate could write"
    other = tmp_path / "other"
    _cfssl_cert.ensure({"dir": str(other), "ca": {"cn": "etcd-ca"}, "certificates": [{"name": "intruder", "profile": "client"}]},
                       Cfssl(etcd.cfssl, run, str(other)))
    rc, _out, err = run([etcd.etcdctl_bin, "--endpoints=" + endpoint, "--cacert", str(pki / "ca.pem"), "--cert",
                         str(other / "intruder" / "cert.pem"), "--key", str(other / "intruder" / "key.pem"),
                         "--dial-timeout=2s", "--command-timeout=3s", "put", "intruder", "1"])
    assert rc != 0, "a client certificate of another CA (same CA name) was accepted"
    assert "certificate signed by unknown authority" in etcd.log("m1") or "bad certificate" in etcd.log("m1")


def served_sans(endpoint_host, port, etcd):
    pki = etcd.workdir / "m1" / "pki" / "current"
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "admin.pem"), str(pki / "admin-key.pem"))
    context.check_hostname = False
    with socket.create_connection((endpoint_host, port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        cert = tls.getpeercert()
    return [value for _kind, value in cert.get("subjectAltName", ())]


def test_new_certificate_is_served_without_a_restart(etcd):
    address = etcd.members["m2"]["address"]
    pid = etcd.services["m2"].pid
    assert "extra.lab.invalid" not in served_sans(address, 2379, etcd)
    etcd.extra_sans["m2"] = ["extra.lab.invalid"]
    result = etcd.issue()
    assert result["reasons"] == ["m2-server: SAN extra.lab.invalid missing"]
    installed = etcd.install_certs("m2")
    assert installed["changed_files"] == ["server.pem"] and installed["ca_changed"] is False
    assert "extra.lab.invalid" in served_sans(address, 2379, etcd)
    assert etcd.services["m2"].pid == pid
    etcd.wait_healthy(THREE)


def test_rolling_restart_leader_last_loses_no_write(etcd):
    view = cluster.look(etcd.etcdctl("m1"), etcd.endpoints(THREE))
    leader = view.leader.name
    order = [n for n in THREE if n != leader] + [leader]
    restarted, seconds = [], []
    with WriterThread(etcd, THREE, "rolling restart (etcd %s)" % etcd.version) as writer:
        for name in order:
            pid = etcd.services[name].pid
            result = cluster.restart(etcd.ops(name), name, "etcd", etcd.endpoints(THREE), prefer=restarted)
            assert etcd.services[name].pid != pid
            if name == leader:
                assert result["leader_moved_to"] in restarted
            else:
                assert result["leader_moved_to"] is None
            restarted.append(name)
            seconds.append(result["seconds"])
    assert writer.figures["lost"] == 0, writer.figures
    assert writer.figures["acknowledged"] > 20
    assert cluster.look(etcd.etcdctl("m1"), etcd.endpoints(THREE)).leader.name != leader
    print("restart to healthy: %s s" % seconds)


def test_restart_and_remove_refused_without_quorum_margin(etcd):
    etcd.services["m2"].stop()
    try:
        with pytest.raises(cluster.ClusterError, match=r"not restarting m1: while it is down the cluster needs 2 healthy voting "
                                                       r"members, only 1 others are healthy \(m2 \(https://127\.\d+\.\d\.12:2379\): "):
            cluster.restart(etcd.ops("m1"), "m1", "etcd", etcd.endpoints(THREE))
        with pytest.raises(cluster.ClusterError, match=r"not removing m3: the 2 remaining members need 2 healthy ones for quorum, 1 are"):
            cluster.remove(etcd.ops("m1"), "m3", etcd.endpoints(THREE))
        # the member that is down itself may be restarted: the others still have quorum
        result = cluster.restart(etcd.ops("m2"), "m2", "etcd", etcd.endpoints(THREE))
        assert result["changed"] is True
    finally:
        etcd.services["m2"].start()
        etcd.wait_healthy(THREE)


def test_join_as_learner_then_remove(etcd):
    etcd.issue()
    live = cluster.look(etcd.etcdctl("m1"), etcd.endpoints(THREE)).as_dict()["members"]
    plan = etcd.plan(THREE + ["m4"], live)
    assert plan["joiners"] == ["m4"]
    assert plan["m4"]["bootstrap"]["initial-cluster-state"] == "existing"
    etcd.prepare("m4", plan["m4"]["bootstrap"])
    four = THREE + ["m4"]
    with WriterThread(etcd, THREE, "member add (etcd %s)" % etcd.version) as writer:
        result = cluster.join(etcd.ops("m4"), "m4", [etcd.members["m4"]["peer_url"]], etcd.members["m4"]["client_url"], "etcd",
                              etcd.endpoints(four))
    assert result["steps"] == ["added as learner", "started", "promoted"]
    assert writer.figures["lost"] == 0, writer.figures
    view = cluster.look(etcd.etcdctl("m1"), etcd.endpoints(four))
    assert sorted(m.name for m in view.voters) == four and all(m.healthy for m in view.members)
    # joining again changes nothing
    assert cluster.join(etcd.ops("m4"), "m4", [etcd.members["m4"]["peer_url"]], etcd.members["m4"]["client_url"], "etcd",
                        etcd.endpoints(four))["changed"] is False
    with WriterThread(etcd, THREE, "member remove (etcd %s)" % etcd.version) as writer:
        result = cluster.remove(etcd.ops("m1"), "m4", etcd.endpoints(four))
    assert result["changed"] is True
    assert writer.figures["lost"] == 0, writer.figures
    etcd.services["m4"].stop()
    assert cluster.remove(etcd.ops("m1"), "m4", etcd.endpoints(THREE))["changed"] is False
    assert sorted(m.name for m in cluster.look(etcd.etcdctl("m1"), etcd.endpoints(THREE)).members) == THREE


def test_killed_member_leaves_the_cluster_writable(etcd):
    view = cluster.look(etcd.etcdctl("m1"), etcd.endpoints(THREE))
    victim = view.leader.name  # the worst case: the leader dies without handing over
    with WriterThread(etcd, THREE, "leader killed (etcd %s)" % etcd.version) as writer:
        etcd.services[victim].stop(signal.SIGKILL)
        time.sleep(3)
    assert writer.figures["lost"] == 0
    assert writer.figures["longest_stall_s"] < 3.5
    problems = cluster.health_problems(cluster.look(etcd.etcdctl("m1" if victim != "m1" else "m2", command_timeout=SHORT_TIMEOUT),
                                                    etcd.endpoints(THREE)),
                                       "m2" if victim == "m1" else "m1")
    assert any(victim in problem for problem in problems)
    etcd.services[victim].start()
    etcd.wait_healthy(THREE)


def test_config_file_is_accepted_and_bootstrap_keys_are_stable(etcd):
    path = etcd.workdir / "m1" / "etcd.conf.yml"
    text = path.read_text()
    assert "client-cert-auth: true" in text
    assert "http://" not in text  # no plaintext listener
    bootstrap = read_bootstrap(str(path))
    assert bootstrap["initial-cluster-state"] == "new"
    assert bootstrap["initial-cluster"].startswith("m1=https://")
    # a member with data keeps its bootstrap keys whatever the member set becomes
    plan = cluster_plan_with_data(etcd, bootstrap)
    assert plan["m1"] == {"action": "keep", "bootstrap": bootstrap}
    proc = subprocess.run([etcd.etcd, "--version"], capture_output=True, text=True, check=True)
    assert etcd.version in proc.stdout


def cluster_plan_with_data(etcd, bootstrap):
    members = [etcd.members[n] for n in THREE + ["m4", "m5"]]
    return etcd_plan(members, {"m1": {"__etcd_preflight": {"has_data": True, "bootstrap": bootstrap}}}, [], "other-token")


def test_snapshot_then_restore_as_a_new_cluster(etcd, tmp_path):
    """Last in this module: it replaces the cluster's data."""
    from ansible_collections.kubeforge.cluster.plugins.module_utils import _etcd_snapshot as snap
    ctl = etcd.etcdctl("m1", etcd.endpoints(THREE))
    for number in range(20):
        ctl.call("put", ["put", "/before/%02d" % number, "v"], parse=False)
    tool = snap.SnapshotTool(run, etcdutl=etcd.etcdutl if etcd.version != "3.4" else None, etcdctl=etcd.etcdctl_bin)
    saved = snap.save(ctl, tool, str(tmp_path / "backup" / "snapshot.db"), etcd.members["m2"]["client_url"], False)
    assert saved["snapshot"]["total_keys"] >= 20 and len(saved["sha256"]) == 64
    ctl.call("put", ["put", "/after/00", "v"], parse=False)
    old_cluster = cluster.look(ctl, etcd.endpoints(THREE)).cluster_id
    members = [etcd.members[n] for n in THREE]
    initial = ",".join("%s=%s" % (m["name"], m["peer_url"]) for m in members)
    token = "restored-%s" % etcd.suite
    for name in THREE:
        params = {"path": saved["path"], "sha256": saved["sha256"], "data_dir": etcd.data_dir(name), "name": name,
                  "initial_cluster": initial, "initial_cluster_token": token, "peer_urls": [etcd.members[name]["peer_url"]]}
        damaged = dict(params, sha256="0" * 64)
        with pytest.raises(snap.SnapshotError, match="has sha256 .* expected 0000"):
            snap.stage(tool, damaged, False)
        assert snap.stage(tool, params, False)["changed"] is True
        assert snap.stage(tool, params, False)["changed"] is False
        with pytest.raises(snap.SnapshotError, match="etcd is still running"):
            snap.swap(params, True, lambda path: None, False)
    for name in THREE:
        etcd.services[name].stop()
    for name in THREE:
        params = {"sha256": saved["sha256"], "data_dir": etcd.data_dir(name), "name": name, "initial_cluster_token": token}
        result = snap.swap(params, False, lambda path: None, False)
        assert result["previous_data_dir"].startswith(etcd.data_dir(name) + ".before-restore-")
        assert snap.swap(params, False, lambda path: None, False)["changed"] is False
        etcd.prepare(name, {"initial-cluster": initial, "initial-cluster-state": "new", "initial-cluster-token": token})
    for name in THREE:
        etcd.services[name].start()
    etcd.wait_healthy(THREE)
    keys = ctl.call("get", ["get", "/", "--prefix", "--keys-only"], parse=False).split()
    assert ["/before/%02d" % n for n in range(20)] == [k for k in keys if k.startswith("/before/")]
    assert "/after/00" not in keys
    assert cluster.look(ctl, etcd.endpoints(THREE)).cluster_id != old_cluster
