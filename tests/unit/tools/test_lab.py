# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the pure parts of tools/lab.py: naming, address allocation, inventory and apt
sources rendering, cleanup planning from a (partial) state file, and argument errors."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess

import lab
import pytest
import yaml

HOST_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
THIRD_PARTY_SOURCES = """\
Types: deb
URIs: https://vendor.example/node_20.x
Suites: nodistro
Components: main
Signed-By: /usr/share/keyrings/nodesource.gpg
"""


def make_state(names=("node1", "node2", "node3"), subnet="10.150.7.0/24"):
    state = {
        "lab": "unit", "id": lab.lab_id("unit"), "distro": "bookworm", "subnet": subnet,
        "gateway": lab.gateway_address(subnet), "bridge": lab.bridge_name("unit"),
        "key": "/srv/lab/unit/id_ed25519", "machines": {}, "nat_rules": [],
        "groups": lab.group_layout(list(names)),
    }
    for index, name in enumerate(names, start=1):
        state["machines"][name] = {
            "index": index, "address": lab.machine_address(subnet, index), "netns": lab.netns_name("unit", name),
            "veth": lab.veth_name("unit", index), "dir": "/srv/lab/unit/machines/%s" % name,
            "root": "/srv/lab/unit/machines/%s/root" % name, "pid": 1000 + index, "pid_start": "5%d" % index,
        }
    return state


# --- naming ---------------------------------------------------------------------------------

def test_kernel_object_names_fit_interface_limit_and_are_per_lab():
    for name in ("kubeforge", "molecule-node_prep_containerd", "x" * 63):
        assert len(lab.bridge_name(name)) <= 15
        assert len(lab.veth_name(name, 200)) <= 15
        assert len(lab.veth_peer_name(name, 200)) <= 15
    assert lab.bridge_name("a") != lab.bridge_name("b")
    assert lab.lab_id("kubeforge") == lab.lab_id("kubeforge")
    assert lab.netns_name("kubeforge", "node1").startswith("kf-%s-" % lab.lab_id("kubeforge"))


@pytest.mark.parametrize("name", ["", "-lead", "has space", "a/b", "x" * 64, "semi;colon"])
def test_invalid_lab_names_are_refused(name):
    with pytest.raises(lab.LabError, match="invalid lab name"):
        lab.validate_lab_name(name)


def test_machine_names_default_and_given():
    assert lab.machine_names(3) == ["node1", "node2", "node3"]
    assert lab.machine_names(0, ["cp", "w1"]) == ["cp", "w1"]
    assert len(lab.machine_names(12)) == 12


@pytest.mark.parametrize(("count", "names", "message"), [
    (0, None, "between 1 and 200"),
    (201, None, "between 1 and 200"),
    (3, ["a", "b"], "does not match the 2 names"),
    (0, ["Node_1"], "invalid machine name"),
    (0, ["a", "a"], "must be unique"),
])
def test_machine_names_errors(count, names, message):
    with pytest.raises(lab.LabError, match=message):
        lab.machine_names(count, names)


# --- addresses --------------------------------------------------------------------------------

def test_subnet_is_deterministic_private_and_in_range():
    first = lab.pick_subnet("kubeforge", [])
    assert first == lab.pick_subnet("kubeforge", [])
    assert first.prefixlen == 24
    assert first.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    assert 100 <= int(str(first.network_address).split(".")[1]) <= 199
    assert lab.pick_subnet("other-lab", []) != first


def test_subnet_skips_host_routes_nameservers_and_other_labs():
    first = lab.pick_subnet("kubeforge", [])
    # the host already routes a wider network containing the first candidate
    wider = ipaddress.IPv4Network(first).supernet(new_prefix=20)
    picked = lab.pick_subnet("kubeforge", [str(wider)])
    assert not picked.overlaps(wider)
    # a nameserver address inside the candidate counts as taken
    picked = lab.pick_subnet("kubeforge", [str(first[53])])
    assert picked != first
    # garbage and the default route do not block anything
    assert lab.pick_subnet("kubeforge", ["default", "not-an-address", "0.0.0.0/0"]) == first


def test_parse_routes_and_nameservers():
    routes = json.dumps([
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"dst": "192.0.2.0/24", "dev": "eth0"},
        {"type": "local", "dst": "127.0.0.1", "dev": "lo", "table": "local"},
        {"dst": "fe80::/64", "dev": "eth0"},
    ])
    assert lab.parse_routes(routes) == ["192.0.2.0/24", "127.0.0.1", "fe80::/64"]
    assert lab.parse_nameservers("# x\nnameserver 10.255.255.53\nsearch lan\nnameserver ::1\n") == ["10.255.255.53", "::1"]


def test_machine_and_gateway_addresses():
    assert lab.gateway_address("10.150.7.0/24") == "10.150.7.1"
    assert lab.machine_address("10.150.7.0/24", 1) == "10.150.7.11"
    assert lab.machine_address("10.150.7.0/24", 12) == "10.150.7.22"
    assert lab.machine_address("10.150.7.0/24", 200) == "10.150.7.210"
    with pytest.raises(lab.LabError, match="does not fit"):
        lab.machine_address("10.150.7.0/24", 250)
    with pytest.raises(lab.LabError, match="does not fit"):
        lab.machine_address("10.150.7.0/24", 0)


# --- inventory --------------------------------------------------------------------------------

def test_group_layout_three_machines():
    assert lab.group_layout(["node1", "node2", "node3"]) == {
        "control_plane": ["node1"], "workers": ["node2", "node3"], "etcd": ["node1", "node2", "node3"]}


def test_group_layout_small_and_large():
    assert lab.group_layout(["node1"]) == {"control_plane": ["node1"], "workers": [], "etcd": ["node1"]}
    assert lab.group_layout(["a", "b"])["etcd"] == ["a"]
    five = lab.group_layout(["n1", "n2", "n3", "n4", "n5"], control_planes=3)
    assert five == {"control_plane": ["n1", "n2", "n3"], "workers": ["n4", "n5"], "etcd": ["n1", "n2", "n3"]}
    # etcd keeps an odd member count covering every control plane
    assert lab.group_layout(["n%d" % i for i in range(1, 7)], control_planes=4)["etcd"] == ["n1", "n2", "n3", "n4", "n5"]
    with pytest.raises(lab.LabError, match="--control-planes must be between 1 and the number of machines"):
        lab.group_layout(["a", "b"], control_planes=3)


def test_render_inventory_structure():
    data = yaml.safe_load(lab.render_inventory(make_state()))
    all_ = data["all"]
    assert all_["vars"]["ansible_user"] == "root"
    assert all_["vars"]["ansible_ssh_private_key_file"] == "/srv/lab/unit/id_ed25519"
    assert all_["vars"]["ansible_python_interpreter"] == "/usr/bin/python3"
    assert "StrictHostKeyChecking=no" in all_["vars"]["ansible_ssh_common_args"]
    assert all_["hosts"] == {"node1": {"ansible_host": "10.150.7.11"}, "node2": {"ansible_host": "10.150.7.12"},
                             "node3": {"ansible_host": "10.150.7.13"}}
    children = all_["children"]
    assert set(children["etcd"]["hosts"]) == {"node1", "node2", "node3"}
    assert set(children["control_plane"]["hosts"]) == {"node1"}
    assert set(children["workers"]["hosts"]) == {"node2", "node3"}
    assert set(children["kube_nodes"]["children"]) == {"control_plane", "workers"}


def test_render_inventory_single_machine_has_empty_workers():
    data = yaml.safe_load(lab.render_inventory(make_state(names=("solo",))))
    assert data["all"]["children"]["workers"] == {}
    assert set(data["all"]["children"]["control_plane"]["hosts"]) == {"solo"}


def test_render_inventory_quotes_awkward_paths():
    state = make_state()
    state["key"] = "/srv/my lab/key: 1"
    data = yaml.safe_load(lab.render_inventory(state))
    assert data["all"]["vars"]["ansible_ssh_private_key_file"] == "/srv/my lab/key: 1"


@pytest.mark.skipif(shutil.which("ansible-inventory") is None, reason="ansible-inventory not on PATH")
def test_rendered_inventory_as_ansible_sees_it(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(lab.render_inventory(make_state()), encoding="utf-8")
    out = subprocess.run(["ansible-inventory", "-i", str(path), "--list"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert sorted(data["kube_nodes"]["children"]) == ["control_plane", "workers"]
    assert data["control_plane"]["hosts"] == ["node1"]
    assert sorted(data["etcd"]["hosts"]) == ["node1", "node2", "node3"]
    assert data["_meta"]["hostvars"]["node2"]["ansible_host"] == "10.150.7.12"
    assert data["_meta"]["hostvars"]["node2"]["ansible_user"] == "root"


def test_inventory_hosts_fallback_parser_reads_rendered_inventory(tmp_path, monkeypatch):
    path = tmp_path / "hosts.yml"
    path.write_text(lab.render_inventory(make_state()), encoding="utf-8")
    monkeypatch.setattr(lab.shutil, "which", lambda _name: None)
    hosts = lab.inventory_hosts(str(path))
    assert [h["name"] for h in hosts] == ["node1", "node2", "node3"]
    assert hosts[2] == {"name": "node3", "address": "10.150.7.13", "user": "root", "key": "/srv/lab/unit/id_ed25519"}


def test_hosts_file_lists_every_machine():
    text = lab.render_hosts_file(make_state())
    assert "127.0.0.1\tlocalhost" in text
    assert "10.150.7.11\tnode1\n10.150.7.12\tnode2\n10.150.7.13\tnode3\n" in text


def test_instance_config_for_molecule():
    assert lab.instance_config(make_state(names=("a", "b"))) == [
        {"instance": "a", "address": "10.150.7.11", "user": "root", "port": 22, "identity_file": "/srv/lab/unit/id_ed25519"},
        {"instance": "b", "address": "10.150.7.12", "user": "root", "port": 22, "identity_file": "/srv/lab/unit/id_ed25519"},
    ]


# --- apt sources ------------------------------------------------------------------------------

def test_apt_sources_keep_debian_entries_and_swap_codename():
    one_line = ("deb https://cloud.example/apt cloud-sdk-bookworm main\n"
                "deb [arch=amd64] http://old.example/debian bookworm main contrib\n")
    entries = lab.parse_apt_sources([HOST_SOURCES, THIRD_PARTY_SOURCES], one_line)
    assert [e["uri"] for e in entries] == ["http://mirror.example/debian", "http://mirror.example/debian-security",
                                           "http://old.example/debian"]
    text = lab.render_apt_sources(entries, "bookworm", "trixie")
    assert "Suites: trixie trixie-updates\n" in text
    assert "Suites: trixie-security\n" in text
    assert "Components: main contrib\n" in text
    assert "bookworm" not in text
    assert "vendor.example" not in text and "cloud.example" not in text
    assert text.count("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg") == 3


def test_apt_sources_same_distro_unchanged_and_disabled_skipped():
    disabled = HOST_SOURCES.replace("Types: deb\nURIs: http://mirror.example/debian-security",
                                    "Types: deb\nEnabled: no\nURIs: http://mirror.example/debian-security")
    entries = lab.parse_apt_sources([disabled], "")
    assert lab.render_apt_sources(entries, "bookworm", "bookworm") == (
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def test_apt_sources_without_debian_entry_is_an_error():
    with pytest.raises(lab.LabError, match="no Debian archive entry"):
        lab.render_apt_sources(lab.parse_apt_sources([THIRD_PARTY_SOURCES], ""), "bookworm", "bookworm")


# --- cleanup planning -------------------------------------------------------------------------

EMPTY_SCAN = {"pids": [], "links": [], "netns": [], "mounts": [], "nat_rules": [], "ip_forward_before": None}


def kinds(actions):
    return [a[0] for a in actions]


def test_cleanup_plan_from_full_state(monkeypatch, tmp_path):
    monkeypatch.setattr(lab, "CACHE_ROOT", tmp_path)
    state = make_state(names=("node1", "node2"))
    rule = ["nat", "POSTROUTING", "-s", state["subnet"], "-j", "MASQUERADE"]
    state["nat_rules"] = [rule]
    actions = lab.plan_cleanup("unit", state, dict(EMPTY_SCAN))
    # machines stop first, the lab directory goes last
    assert actions[0] == ("stop", "node1", "10.150.7.11", 1001, "51")
    assert actions[1] == ("stop", "node2", "10.150.7.12", 1002, "52")
    assert actions[-1] == ("rm", str(tmp_path / "unit"))
    order = kinds(actions)
    assert order.index("kill_netns") < order.index("umount") < order.index("del_netns") < order.index("del_link")
    assert ("umount", "/srv/lab/unit/machines/node1/root") in actions
    assert ("del_netns", lab.netns_name("unit", "node2")) in actions
    links = [a[1] for a in actions if a[0] == "del_link"]
    assert links == [lab.veth_name("unit", 1), lab.veth_name("unit", 2), lab.bridge_name("unit")]
    assert ("iptables", *rule) in actions
    assert "ip_forward" not in order


def test_cleanup_plan_without_state_uses_the_scan(monkeypatch, tmp_path):
    """A crash before/while writing state.json: everything found by name prefix is removed."""
    monkeypatch.setattr(lab, "CACHE_ROOT", tmp_path)
    ns = lab.netns_name("unit", "node1")
    veth, peer, bridge = lab.veth_name("unit", 1), lab.veth_peer_name("unit", 2), lab.bridge_name("unit")
    nat = ["nat", "POSTROUTING", "-s", "10.150.7.0/24", "-m", "comment", "--comment", "kubeforge-lab:unit", "-j", "MASQUERADE"]
    scan = {"pids": [4242], "links": [bridge, veth, peer], "netns": [ns], "nat_rules": [nat], "ip_forward_before": "0",
            "mounts": [str(tmp_path / "unit/machines/node1/root"), str(tmp_path / "unit/machines/node1/root/proc")]}
    actions = lab.plan_cleanup("unit", None, scan)
    assert actions[0] == ("stop", "pid 4242", None, 4242, None)
    umounts = [a[1] for a in actions if a[0] == "umount"]
    assert umounts == [str(tmp_path / "unit/machines/node1/root/proc"), str(tmp_path / "unit/machines/node1/root")]
    assert [a[1] for a in actions if a[0] == "del_link"] == sorted([veth, peer]) + [bridge]
    assert ("del_netns", ns) in actions
    assert ("iptables", *nat) in actions
    assert ("ip_forward", "0") in actions
    assert actions[-1] == ("rm", str(tmp_path / "unit"))


def test_cleanup_plan_partial_state_merges_scan_without_duplicates(monkeypatch, tmp_path):
    """State written before a machine's resources existed (crash halfway): no pid, no duplicates."""
    monkeypatch.setattr(lab, "CACHE_ROOT", tmp_path)
    state = make_state(names=("node1", "node2"))
    del state["machines"]["node2"]["pid"], state["machines"]["node2"]["pid_start"]
    scan = dict(EMPTY_SCAN, pids=[1001, 777], netns=[lab.netns_name("unit", "node1")],
                links=[lab.veth_name("unit", 1), lab.bridge_name("unit")])
    actions = lab.plan_cleanup("unit", state, scan)
    stops = [a for a in actions if a[0] == "stop"]
    assert stops == [("stop", "node1", "10.150.7.11", 1001, "51"), ("stop", "node2", "10.150.7.12", None, None),
                     ("stop", "pid 777", None, 777, None)]
    assert [a[1] for a in actions if a[0] == "del_netns"] == [lab.netns_name("unit", "node1"), lab.netns_name("unit", "node2")]
    assert [a[1] for a in actions if a[0] == "del_link"].count(lab.bridge_name("unit")) == 1


def test_cleanup_plan_nothing_left_is_just_the_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(lab, "CACHE_ROOT", tmp_path)
    assert lab.plan_cleanup("unit", None, dict(EMPTY_SCAN)) == [("rm", str(tmp_path / "unit"))]


def test_corrupt_state_file_reads_as_none(monkeypatch, tmp_path):
    monkeypatch.setattr(lab, "CACHE_ROOT", tmp_path)
    (tmp_path / "unit").mkdir()
    (tmp_path / "unit" / "state.json").write_text('{"lab": "unit", "machi', encoding="utf-8")
    assert lab.load_state("unit") is None
    (tmp_path / "unit" / "state.json").write_text('["not", "a", "dict"]', encoding="utf-8")
    assert lab.load_state("unit") is None


def test_state_roundtrip_is_private(monkeypatch, tmp_path):
    monkeypatch.setattr(lab, "CACHE_ROOT", tmp_path)
    state = make_state()
    lab.save_state(state)
    assert lab.load_state("unit") == state
    assert (tmp_path / "unit" / "state.json").stat().st_mode & 0o777 == 0o600


# --- summary ----------------------------------------------------------------------------------

def test_summary_cells():
    info = lab.parse_summary("distro=debian 13 (trixie)\nactive_containerd=active\nload_containerd=loaded\n"
                             "version_containerd=1.7.24~ds1\nactive_docker=inactive\nload_docker=not-found\n"
                             "active_nginx=failed\nload_nginx=loaded\ncri=/run/containerd/containerd.sock\n")
    assert info["distro"] == "debian 13 (trixie)"
    assert info["cri"] == ["/run/containerd/containerd.sock"]
    assert lab.summary_cell(info, "containerd") == "active 1.7.24~ds1"
    assert lab.summary_cell(info, "docker") == "-"
    assert lab.summary_cell(info, "nginx") == "failed"


# --- command line -----------------------------------------------------------------------------

def test_up_argument_errors_are_reported_not_raised(capsys, monkeypatch):
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    assert lab.main(["up", "--machines", "0"]) == 1
    err = capsys.readouterr().err
    assert "--machines must be between 1 and 200" in err
    assert "down --lab" not in err  # nothing was created, nothing to clean up
    assert lab.main(["up", "--lab", "bad name"]) == 1
    assert "invalid lab name 'bad name'" in capsys.readouterr().err


def test_up_requires_root(capsys, monkeypatch):
    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    assert lab.main(["up"]) == 1
    assert "needs root" in capsys.readouterr().err


def test_unknown_distro_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        lab.main(["up", "--distro", "buster"])
    assert exc.value.code == 2
    assert "invalid choice: 'buster'" in capsys.readouterr().err


def test_status_of_a_lab_that_is_not_up(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(lab, "CACHE_ROOT", tmp_path)
    assert lab.main(["status", "--lab", "nothere"]) == 1
    assert "lab nothere is not up" in capsys.readouterr().err


def test_ssh_parses_lab_before_the_machine_and_the_remote_command():
    args = lab.build_parser().parse_args(["ssh", "--lab", "x", "node2", "--", "systemctl", "is-active", "ssh"])
    assert (args.action, args.lab, args.name) == ("ssh", "x", "node2")
    assert [arg for arg in args.command if arg != "--"] == ["systemctl", "is-active", "ssh"]


def test_summary_of_missing_inventory(capsys, tmp_path):
    assert lab.main(["summary", "--inventory", str(tmp_path / "nope.yml")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_assign_indexes_keeps_running_machines_and_fills_gaps():
    assert lab.assign_indexes({}, ["node1", "node2", "node3"]) == {"node1": 1, "node2": 2, "node3": 3}
    # node2 removed, node4 added: node3 keeps 3 (its address), node4 takes the free 2
    assert lab.assign_indexes({"node1": 1, "node2": 2, "node3": 3}, ["node1", "node3", "node4"]) == {
        "node1": 1, "node3": 3, "node4": 2}
    # reordering names never renumbers an existing machine
    assert lab.assign_indexes({"a": 1, "b": 2}, ["b", "a", "c"]) == {"a": 1, "b": 2, "c": 3}
    # a machine recorded without an index (crash before it was saved) gets a fresh one
    assert lab.assign_indexes({"a": 1, "b": None}, ["a", "b"]) == {"a": 1, "b": 2}


# --- stopping and removing --------------------------------------------------------------------

def test_safe_rmtree_refuses_while_something_stays_mounted(monkeypatch, tmp_path):
    victim = tmp_path / "base.tmp"
    (victim / "proc").mkdir(parents=True)
    (victim / "proc" / "keep").write_text("host data", encoding="utf-8")
    umounts = []
    monkeypatch.setattr(lab, "mounts_under", lambda prefix: [str(victim / "proc")])
    monkeypatch.setattr(lab, "run", lambda argv, check=True: umounts.append(argv))
    with pytest.raises(lab.LabError, match="still mounted below it: .*/proc"):
        lab.safe_rmtree(victim)
    assert umounts == [["umount", "-l", str(victim / "proc")]]
    assert (victim / "proc" / "keep").read_text(encoding="utf-8") == "host data"


def test_safe_rmtree_removes_after_unmounting(monkeypatch, tmp_path):
    victim = tmp_path / "machines"
    (victim / "node1" / "upper").mkdir(parents=True)
    mounted = [str(victim / "node1" / "root"), str(victim / "node1" / "root" / "proc")]
    monkeypatch.setattr(lab, "mounts_under", lambda prefix: list(mounted))

    def fake_run(argv, check=True):
        mounted.remove(argv[-1])

    monkeypatch.setattr(lab, "run", fake_run)
    lab.safe_rmtree(victim)
    assert not victim.exists()


def test_stop_escalates_to_sigkill_for_a_process_ignoring_sigterm(monkeypatch, capsys):
    monkeypatch.setattr(lab, "POWEROFF_GRACE", 0.5)
    monkeypatch.setattr(lab, "TERM_GRACE", 0.5)
    proc = subprocess.Popen([
        "python3", "-c",
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        errors = lab.stop_machines("unit", [("stop", "pid %d" % proc.pid, None, proc.pid, lab.pid_start_time(proc.pid))], None)
        assert errors == []
        assert proc.wait(timeout=5) == -9
        out = capsys.readouterr().out
        assert "sending SIGTERM" in out and "sending SIGKILL" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_is_lab_inventory_by_digest_or_header(tmp_path):
    state = make_state()
    text = lab.render_inventory(state)
    path = tmp_path / "hosts.yml"
    path.write_text(text, encoding="utf-8")
    digest = lab.hashlib.sha256(text.encode()).hexdigest()
    assert lab.is_lab_inventory(path, "unit", digest)
    assert lab.is_lab_inventory(path, "unit")  # state lost: the header names the lab
    assert not lab.is_lab_inventory(path, "unit2")  # another lab's name is not a prefix match
    path.write_text(text + "# my own note\n", encoding="utf-8")
    assert not lab.is_lab_inventory(path, "unit", digest)  # edited by the user: kept
    path.write_text("all:\n  hosts: {}\n", encoding="utf-8")
    assert not lab.is_lab_inventory(path, "unit")
    assert not lab.is_lab_inventory(tmp_path / "missing.yml", "unit")


def test_up_names_the_missing_debian_packages(capsys, monkeypatch):
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lab.shutil, "which", lambda name: None if name in ("systemd-nspawn", "debootstrap") else "/usr/bin/" + name)
    assert lab.main(["up"]) == 1
    err = capsys.readouterr().err
    assert "the lab needs debootstrap, systemd-container on this host: run `make deps` or " \
           "`apt-get install debootstrap systemd-container`" in err
    assert "python3 tools/lab.py down --lab kubeforge" in err
