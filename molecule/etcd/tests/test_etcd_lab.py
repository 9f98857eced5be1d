# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an operator checks on the external etcd cluster, and what each kind of change costs its clients.

The tests run in file order on one lab (they build on each other): first the read-only checks and the refused bad
input (each a playbook run that must change nothing), then the changes, each with a writer loop running, and last a
no-op converge that must restart nothing. Every playbook run costs 10+ s of Ansible start-up on a loaded controller,
so each proves as much as it can. Figures (writes, acknowledged, lost, longest stall, wall time, controller CPU) are
printed and kept in <ephemeral dir>/etcd-figures.json; the longer measurements are benchmarks/etcd_rolling.py's.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from lab_steps import (EPHEMERAL, FIGURES, Writing, etcd_process, host_address, machine, member_state, pki, playbook, record,
                       write_inventory)

THREE = ["node1", "node2", "node3"]
SAN_VARS = {"node2": {"etcd_extra_sans": ["node2.etcd.lab.invalid"]}}
ROLLED = {"etcd_config_extra": {"snapshot-count": 20000}}
FIG = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}


def etcdctl(args, on="node1"):
    base = ("ETCDCTL_API=3 etcdctl --endpoints=%s --cacert /etc/etcd/pki/current/ca.pem --cert /etc/etcd/pki/current/admin.pem "
            "--key /etc/etcd/pki/current/admin-key.pem " % ",".join("https://%s:2379" % host_address(h) for h in THREE))
    return machine(on).check_output(base + args)


def run_argv(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    return proc.returncode, proc.stdout, proc.stderr


def leader_name():
    status = json.loads(etcdctl("endpoint status -w json"))
    members = json.loads(etcdctl("member list -w json"))["members"]
    return next(m["name"] for m in members if m["ID"] == status[0]["Status"]["leader"])


def served_sans(host):
    context = ssl.create_default_context(cafile=str(pki("ca") / "cert.pem"))
    context.load_cert_chain(str(pki("node1-admin") / "cert.pem"), str(pki("node1-admin") / "key.pem"))
    with socket.create_connection((host_address(host), 2379), timeout=5) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
        return [value for _kind, value in tls.getpeercert()["subjectAltName"]]


@pytest.mark.parametrize("name", THREE)
def test_member_runs_as_etcd_with_tls_only(name):
    node = machine(name)
    assert node.process.get(comm="etcd").user == "etcd"
    data = node.file("/var/lib/etcd/data")
    assert (data.user, data.mode) == ("etcd", 0o700)
    for key in ("server-key.pem", "peer-key.pem", "admin-key.pem"):
        assert node.file("/etc/etcd/pki/current/" + key).mode == 0o600
    config = node.file("/etc/etcd/etcd.conf.yml").content_string
    assert "http://" not in config and config.count("client-cert-auth: true") == 2
    listening = node.check_output("ss -Hltn")
    assert sorted({line.split()[3] for line in listening.splitlines() if ":23" in line.split()[3]}) == sorted(
        ["%s:2379" % host_address(name), "%s:2380" % host_address(name), "127.0.0.1:2379"])
    assert not node.file("/etc/etcd/pki/current/ca-key.pem").exists  # the CA key stays on the controller
    assert node.file("/etc/systemd/system/etcd.service").contains("--config-file /etc/etcd/etcd.conf.yml")


def test_etcdctl_over_tls_lists_three_healthy_members():
    health = json.loads(etcdctl("endpoint health -w json"))
    assert sorted(h["health"] for h in health) == [True, True, True]
    assert sorted(m["name"] for m in json.loads(etcdctl("member list -w json"))["members"]) == THREE


def test_clients_without_a_certificate_of_the_ca_are_refused(tmp_path):
    from ansible_collections.kubeforge.cluster.plugins.module_utils import _cfssl_cert
    from ansible_collections.kubeforge.cluster.plugins.module_utils._cfssl import Cfssl

    no_cert = ssl.create_default_context(cafile=str(pki("ca") / "cert.pem"))
    no_cert.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection((host_address("node1"), 2379), timeout=5) as raw, no_cert.wrap_socket(raw) as tls:
            tls.sendall(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            if not tls.recv(100):
                raise ConnectionError("closed")
    other = tmp_path / "other-ca"
    # a CA of the same name made by cfssl_cert's own code (in-process: an ansible run would cost its start-up)
    _cfssl_cert.ensure({"dir": str(other), "ca": {"cn": "etcd-ca lab"}, "certificates": [{"name": "intruder", "profile": "client"}]},
                       Cfssl(shutil.which("cfssl") or "/usr/bin/cfssl", run_argv, str(other)))
    foreign = ssl.create_default_context(cafile=str(pki("ca") / "cert.pem"))
    foreign.check_hostname = False
    foreign.load_cert_chain(str(other / "intruder" / "cert.pem"), str(other / "intruder" / "key.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection((host_address("node1"), 2379), timeout=5) as raw, foreign.wrap_socket(raw) as tls:
            tls.sendall(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            if not tls.recv(100):
                raise ConnectionError("closed")


# (label, inventory, extra vars, expected message, --tags: the stage that must refuse it and the preflight before it;
# the empty group is refused by the stage playbook's own first play, which has no tags)
BAD = [
    ("empty group", dict(etcd_hosts=[], empty_etcd=True), {}, "The inventory group etcd has no hosts", None),
    ("address not on the host", dict(etcd_hosts=THREE, host_vars={"node1": {"etcd_address": "203.0.113.250"}}), {},
     "etcd_address 203.0.113.250 (default: ansible_host) is not an address of node1", "etcd_preflight"),
    ("CSR host", dict(etcd_hosts=THREE, host_vars={"node1": {"etcd_extra_sans": ["bad_host!"]}}), {},
     "'bad_host!' is neither a DNS name nor an IP address (a CSR host must be one)", "etcd_preflight,etcd_pki"),
    ("cfssl missing", dict(etcd_hosts=THREE), {"etcd_cfssl_path": "/nonexistent/cfssl"},
     "cfssl_path: cfssl (/nonexistent/cfssl) was not found on this host", "etcd_preflight,etcd_pki"),
    ("tarball checksum", dict(etcd_hosts=THREE), "artifacts", ("etcd_artifacts_dir:", "has sha256", "SHA256SUMS says", "nothing was changed"),
     "etcd_preflight,etcd_install"),
]


@pytest.mark.parametrize(("label", "inventory", "extra", "message", "tags"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_error_before_anything_changes(label, inventory, extra, message, tags, tmp_path):
    before = {h: member_state(h) for h in THREE}
    if extra == "artifacts":
        import tarfile
        tarball = tmp_path / "etcd-v3.5.16-linux-amd64.tar.gz"
        (tmp_path / "etcd-v3.5.16-linux-amd64").mkdir()
        (tmp_path / "etcd-v3.5.16-linux-amd64" / "etcd").write_text("#!/bin/sh\n")
        with tarfile.open(tarball, "w:gz") as archive:
            archive.add(tmp_path / "etcd-v3.5.16-linux-amd64", arcname="etcd-v3.5.16-linux-amd64")
        (tmp_path / "SHA256SUMS").write_text("%s  %s\n" % ("0" * 64, tarball.name))
        extra = {"etcd_install_method": "artifacts", "etcd_artifacts_dir": str(tmp_path), "etcd_artifact_files": [tarball.name],
                 "etcd_tarball_members": ["etcd"]}
    inventory = dict(inventory)
    host_vars = inventory.pop("host_vars", {})  # the converged lab's settings plus the bad one
    run = playbook("etcd.yml", write_inventory(inventory.pop("etcd_hosts"), host_vars, name="bad", **inventory), extra, tags=tags)
    assert run.rc != 0, run.output[-2000:]
    for part in (message,) if isinstance(message, str) else message:
        assert part in " ".join(run.output.split()), run.output[-3000:]
    assert all(entry["changed"] == 0 for entry in run.recap.values()), run.recap
    assert {h: member_state(h) for h in THREE} == before


def test_san_change_reissues_one_certificate_and_restarts_nothing():
    before = {h: etcd_process(h) for h in THREE}
    inventory = write_inventory(THREE, SAN_VARS)
    with Writing(THREE, "SAN change", FIG) as writing:
        run = playbook("etcd.yml", inventory, diff=True, verbose=True)
    assert run.rc == 0, run.output[-3000:]
    # every member's keys pass through the etcd_certs action in this run (node2's new set is installed): no key of
    # the PKI (members, CA, kube-apiserver client; current and previous generations) appears in the -vv --diff output
    keys = sorted((EPHEMERAL / "etcd-pki" / ".generations").glob("*/key.pem"))
    names = {path.parent.name.rsplit(".", 1)[0] for path in keys}
    assert {"ca", "node1-apiserver-etcd-client"} | {"%s-%s" % (h, kind) for h in THREE for kind in ("server", "peer", "admin")} <= names
    flat = run.output.replace("\n", "").replace(" ", "").replace("\\n", "")
    for path in keys:
        body = "".join(line for line in path.read_text().splitlines() if "-----" not in line)
        for start in range(0, len(body) - 40, 40):
            assert body[start:start + 40] not in flat, "a piece of %s is in the -vv --diff output" % path
    assert "PRIVATE KEY" not in run.output
    # the diff of node2's certificate set (never key material) shows the new SAN
    assert [line for line in run.output.splitlines() if line.startswith("+server.pem: CN=node2,") and "node2.etcd.lab.invalid" in line]
    # one cfssl_cert run on the controller issues every member's certificates (run_once, reported on the first
    # member): only node2's server certificate is re-issued, and only node2's set is installed
    assert run.changed() == {"node1": 1, "node2": 1}, run.output[-3000:]
    assert "node2-server:SANnode2.etcd.lab.invalidmissing" in flat, run.output[-3000:]
    assert "node1-server:SAN" not in flat and "node3-server:SAN" not in flat
    assert {h: etcd_process(h) for h in THREE} == before
    assert "node2.etcd.lab.invalid" in served_sans("node2")  # served without a restart
    assert writing.result["lost"] == 0


def test_killed_member_leaves_the_cluster_writable_and_the_next_converge_brings_a_stopped_one_back():
    # kill(1) of the main process, not `systemctl kill`: the lab's machines share one cgroup tree, and systemd's
    # SIGKILL through cgroup.kill would reach the etcd units of every machine
    node3 = machine("node3")
    with Writing(THREE, "member killed", FIG) as writing:
        node3.check_output("kill -9 $(systemctl show etcd -p MainPID --value)")
        time.sleep(3)
    assert writing.result["lost"] == 0
    assert writing.result["longest_stall_s"] < 3.0
    node3.check_output("systemctl stop etcd")
    run = playbook("etcd.yml", write_inventory(THREE, SAN_VARS))
    assert run.rc == 0 and run.changed() == {"node3": 1}, run.output[-3000:]
    assert node3.service("etcd").is_running
    assert sorted(h["health"] for h in json.loads(etcdctl("endpoint health -w json"))) == [True, True, True]


def test_rolling_config_change_with_a_4th_member_then_back_to_three():
    """One scale run adds node4 and changes a config value of every member: the running members restart one at a
    time, the leader last, then node4 joins (as a learner, promoted once in sync); a second run removes it again.
    3 -> 4 -> 3 here; 3 -> 5 -> 3 and repeated rolling changes are benchmarks/etcd_rolling.py's."""
    four = THREE + ["node4"]
    leader = leader_name()
    before = {h: etcd_process(h) for h in THREE}
    with Writing(THREE, "rolling config change + member add (4th)", FIG) as writing:
        run = playbook("etcd_scale.yml", write_inventory(four, SAN_VARS), ROLLED)
    assert run.rc == 0, run.output[-3000:]
    record(FIG, "rolling config change + scale 3 -> 4 playbook", {"wall_s": run.seconds})
    order = [line.split("(item=")[1].split()[0] for line in run.output.splitlines() if "(configuration changed)" in line]
    assert sorted(order) == THREE and order[-1] == leader, order
    after = {h: etcd_process(h) for h in THREE}
    assert all(after[h][0] != before[h][0] for h in THREE)
    assert sorted(THREE, key=lambda h: after[h][1]) == order  # started again in that order, one after the other
    assert writing.result["lost"] == 0
    assert writing.result["longest_stall_s"] < 3.0  # kubespray: 3 s for a config change, 6 s for a member add; target 1 s
    members = json.loads(etcdctl("member list -w json"))["members"]
    assert sorted(m["name"] for m in members) == sorted(four) and not any(m.get("isLearner") for m in members)
    # the join task's lines (the restarts' items carry their reasons: "(item=node2 (configuration changed))")
    joins = re.findall(r"^changed: \[node1 -> node\d+\(\S+\)\] => \(item=(node\d+)\)$", run.output, re.M)
    assert joins == ["node4"], run.output[-3000:]
    # an even member count is allowed, with a warning that explains fault tolerance
    assert "an even number tolerates as many failed members as 3 (quorum is 3, so 1 may fail)" in " ".join(run.output.split())
    with Writing(THREE, "member remove (4th)", FIG) as writing:
        run = playbook("etcd_scale.yml", write_inventory(THREE, SAN_VARS), ROLLED)
    assert run.rc == 0, run.output[-3000:]
    record(FIG, "scale 4 -> 3 playbook", {"wall_s": run.seconds})
    assert writing.result["lost"] == 0
    assert sorted(m["name"] for m in json.loads(etcdctl("member list -w json"))["members"]) == THREE
    assert not machine("node4").service("etcd").is_running
    assert not machine("node4").file("/var/lib/etcd/data").exists


def test_backup_then_restore_onto_wiped_members():
    writer = Writing(THREE, "keys before the snapshot", {}).writer
    for number in range(50):
        writer.put("/before/%03d" % number, str(number))
    run = playbook("etcd_backup.yml", write_inventory(THREE, SAN_VARS), ROLLED)
    assert run.rc == 0, run.output[-3000:]
    backups = sorted((EPHEMERAL / "etcd-backups").glob("lab-etcd-*.db"))
    assert backups, run.output[-2000:]
    snapshot = backups[-1]
    checksum = snapshot.with_name(snapshot.name + ".sha256").read_text().split()
    assert checksum == [hashlib.sha256(snapshot.read_bytes()).hexdigest(), snapshot.name]
    assert snapshot.stat().st_mode & 0o777 == 0o600
    etcdctl("put /after/000 written-after-the-snapshot")
    old_cluster = json.loads(etcdctl("endpoint status -w json"))[0]["Status"]["header"]["cluster_id"]
    for name in THREE:  # total loss: every member's data is gone
        machine(name).check_output("systemctl stop etcd && rm -rf /var/lib/etcd/data")
    run = playbook("etcd_restore.yml", write_inventory(THREE, SAN_VARS), dict(ROLLED, etcd_restore_snapshot=str(snapshot)))
    assert run.rc == 0, run.output[-3000:]
    record(FIG, "restore playbook", {"wall_s": run.seconds})
    keys = etcdctl("get / --prefix --keys-only").split()
    assert [k for k in keys if k.startswith("/before/")] == ["/before/%03d" % n for n in range(50)]
    assert "/after/000" not in keys
    assert json.loads(etcdctl("endpoint status -w json"))[0]["Status"]["header"]["cluster_id"] != old_cluster


def test_second_converge_changes_and_restarts_nothing_and_kubeadm_reads_the_settings():
    """The idempotence proof (after every change above, the restore included): a converge of the stage changes
    nothing and restarts no member; in the same run the kubeadm stage's reading of the external etcd settings."""
    before = {h: etcd_process(h) for h in THREE}
    expected = ["https://%s:2379" % host_address(h) for h in THREE]
    run = playbook(str(Path(__file__).resolve().parents[1] / "kubeadm_external.yml"), write_inventory(THREE, SAN_VARS),
                   dict(ROLLED, expected_endpoints=expected))
    assert run.rc == 0 and run.changed() == {}, run.output[-3000:]  # the assert in the playbook checks the values
    assert {h: etcd_process(h) for h in THREE} == before
    tasks = {h: entry["ok"] + entry["skipped"] for h, entry in run.recap.items() if h in THREE}
    record(FIG, "no-op converge (3 members) + kubeadm settings",
           {"wall_s": run.seconds, "controller_cpu_s": run.cpu, "tasks_per_host": tasks})
    print("\nno-op converge: %s s wall, %s s controller CPU, tasks %s" % (run.seconds, run.cpu, tasks))
