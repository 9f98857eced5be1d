# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/lab_summary.py: which stages each node runs, read from the inventory through the stage
table; the probe script, its parsing and the table printed by ``make lab``."""

from __future__ import annotations

import shutil
import subprocess

import lab_summary
import pytest
from kflab.inventory import render_inventory
from lab_fixtures import make_state

DOCKER_NODE = """\
all:
  vars:
    ansible_user: root
  hosts:
    cp1:
      ansible_host: 10.0.0.11
    w1:
      ansible_host: 10.0.0.12
      kubeforge_container_runtime: docker
    w2:
      ansible_host: 10.0.0.13
  children:
    etcd:
      hosts:
        cp1: {}
    control_plane:
      hosts:
        cp1: {}
    workers:
      vars:
        apiserver_proxy_backend: haproxy
      hosts:
        w1: {}
        w2: {}
    kube_nodes:
      children:
        control_plane: {}
        workers: {}
    builders:
      vars:
        image_tools_enabled: true
      hosts:
        w2: {}
"""


def write(tmp_path, text, name="hosts.yml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(params=["ansible-inventory", "built-in reader"])
def reader(request, monkeypatch):
    """Both ways of reading an inventory give the same answer."""
    if request.param == "ansible-inventory":
        if shutil.which("ansible-inventory") is None:
            pytest.skip("ansible-inventory not on PATH")
    else:
        monkeypatch.setattr(lab_summary.shutil, "which", lambda _name: None)
    return request.param


def test_summary_cells():
    info = lab_summary.parse_summary("distro=debian 13 (trixie)\nactive_containerd=active\nload_containerd=loaded\n"
                                     "version_containerd=1.7.24~ds1\nactive_docker=inactive\nload_docker=not-found\n"
                                     "active_nginx=failed\nload_nginx=loaded\ncri=/run/containerd/containerd.sock\n")
    assert info["distro"] == "debian 13 (trixie)"
    assert info["cri"] == ["/run/containerd/containerd.sock"]
    assert lab_summary.summary_cell(info, "containerd") == "active 1.7.24~ds1"
    assert lab_summary.summary_cell(info, "docker") == "-"
    assert lab_summary.summary_cell(info, "nginx") == "failed"


@pytest.mark.parametrize(("line", "version"), [
    ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1", "1.6.20~ds1"),
    ("containerd github.com/containerd/containerd/v2 2.1.9~ds1 2.1.9~ds1-1", "2.1.9~ds1"),
    ("Docker version 20.10.24+dfsg1, build 297e128", "20.10.24+dfsg1"),
    ("etcd Version: 3.4.23", "3.4.23"),
    ("nginx version: nginx/1.22.1", "1.22.1"),
    ("HAProxy version 2.6.12-1+deb12u1 2023/12/16 - https://haproxy.org/", "2.6.12-1+deb12u1"),
    ("cri-dockerd 0.4.3 (d969e29f)", "0.4.3"),
    ("buildkitd github.com/moby/buildkit v0.32.2 991535e0973488b6a429096d21fa13f81f2d89d8", "v0.32.2"),
    ("Kubernetes v1.34.1", "v1.34.1"),
    ("", ""),
])
def test_version_of_the_first_line_of_each_tools_version_output(line, version):
    assert lab_summary.version_of(line) == version


def test_inventory_hosts_fallback_parser_reads_rendered_inventory(tmp_path, monkeypatch):
    path = write(tmp_path, render_inventory(make_state()))
    monkeypatch.setattr(lab_summary.shutil, "which", lambda _name: None)
    hosts = lab_summary.inventory_hosts(path)
    assert [h["name"] for h in hosts] == ["node1", "node2", "node3"]
    assert hosts[2] == {"name": "node3", "address": "10.150.7.13", "user": "root", "key": "/srv/lab/unit/id_ed25519"}


def test_lab_inventory_groups(tmp_path, reader):
    inventory = lab_summary.read_inventory(write(tmp_path, render_inventory(make_state())))
    assert inventory.groups["kube_nodes"] == {"node1", "node2", "node3"}
    assert inventory.groups["control_plane"] == {"node1"}
    assert inventory.groups["etcd"] == {"node1", "node2", "node3"}
    assert inventory.hostvars["node2"]["kubeforge_lab_name"] == "unit"


def test_the_shipped_stage_table_loads():
    table = lab_summary.load_stages()
    names = [stage.name for stage in table.stages]
    assert {"containerd", "docker", "cri-dockerd", "etcd", "kubelet", "buildkitd"} <= set(names)
    assert "/run/containerd/containerd.sock" in table.cri_sockets()
    assert "/run/cri-dockerd.sock" in table.cri_sockets()


def test_columns_follow_the_lab_inventory(tmp_path, reader):
    """The lab's inventory (containerd everywhere, etcd on 3 nodes): no docker, cri-dockerd, buildkitd column."""
    table = lab_summary.load_stages()
    inventory = lab_summary.read_inventory(write(tmp_path, render_inventory(make_state())))
    assert lab_summary.columns(table, inventory) == ["containerd", "etcd", "apiserver-proxy", "kubelet"]


def test_stages_per_node_follow_groups_and_variables(tmp_path, reader):
    table = lab_summary.load_stages()
    inventory = lab_summary.read_inventory(write(tmp_path, DOCKER_NODE))

    def stages(host):
        return [s.name for s in table.stages if s.applies_to(host, inventory)]

    assert stages("cp1") == ["containerd", "etcd", "apiserver-proxy-nginx", "kubelet"]
    assert stages("w1") == ["docker", "cri-dockerd", "apiserver-proxy-haproxy", "kubelet"]
    assert stages("w2") == ["containerd", "apiserver-proxy-haproxy", "kubelet", "buildkitd"]
    assert lab_summary.columns(table, inventory) == [
        "containerd", "docker", "cri-dockerd", "etcd", "apiserver-proxy", "kubelet", "buildkitd"]


def test_a_new_stage_is_one_line_in_the_table(tmp_path):
    path = tmp_path / "stages.toml"
    path.write_text('[stages]\nchrony = { group = "all", unit = "chrony", version = ["chronyd", "-v"] }\n', encoding="utf-8")
    table = lab_summary.load_stages(path)
    inventory = lab_summary.read_inventory(write(tmp_path, render_inventory(make_state(names=("solo",)))))
    assert lab_summary.columns(table, inventory) == ["chrony"]
    assert "probe chrony chrony chronyd -v\n" in lab_summary.probe_script(list(table.stages), [])


@pytest.mark.parametrize(("entry", "message"), [
    ('x = { group = "etcd" }', "stage x: missing unit"),
    ('x = { group = "etcd", unit = "etcd", sockets = [] }', "stage x: unknown field"),
    ('x = { group = "etcd", unit = "etcd", when = { a = "b" } }', "stage x: when.a must be a list of strings"),
    ('X = { group = "etcd", unit = "etcd" }', "stage X: a name of lower-case letters"),
    ('x = { group = "", unit = "etcd" }', "stage x: group must be a non-empty string"),
    ("x = {", "cannot read the stage table"),
])
def test_a_malformed_stage_is_named(tmp_path, entry, message):
    path = tmp_path / "stages.toml"
    path.write_text("[stages]\n" + entry + "\n", encoding="utf-8")
    with pytest.raises(lab_summary.SummaryError, match=message):
        lab_summary.load_stages(path)


def test_probe_script_reports_each_stage_and_the_sockets(tmp_path):
    """The script as a node runs it (sh): units that do not exist here read as not installed."""
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    table = lab_summary.load_stages()
    script = lab_summary.probe_script([s for s in table.stages if s.name in ("etcd", "kubelet")], ["/nonexistent/x.sock"])
    assert "probe etcd etcd etcd --version\n" in script
    proc = subprocess.run(["sh", "-s"], input=script.replace(". /etc/os-release", "ID=debian VERSION_ID=12 VERSION_CODENAME=x"),
                          capture_output=True, text=True, check=True)
    info = lab_summary.parse_summary(proc.stdout)
    assert info["distro"] == "debian 12 (x)"
    assert "active_etcd" in info and "load_kubelet" in info
    assert info["cri"] == []


def test_summary_rows_blank_where_a_stage_does_not_apply(tmp_path, reader):
    table = lab_summary.load_stages()
    inventory = lab_summary.read_inventory(write(tmp_path, render_inventory(make_state(names=("node1", "node2")))))
    out = ("distro=debian 12 (bookworm)\nactive_containerd=active\nload_containerd=loaded\nversion_containerd=containerd x 1.6.20~ds1\n"
           "active_etcd=inactive\nload_etcd=not-found\nactive_kubelet=inactive\nload_kubelet=not-found\n"
           "active_apiserver-proxy-nginx=inactive\nload_apiserver-proxy-nginx=not-found\n"
           "cri=/run/containerd/containerd.sock\n")
    rows = lab_summary.summary_rows(table, inventory, {"node1": (0, out, ""), "node2": (255, "", "ssh: connect timed out")})
    assert rows[0] == ["NODE", "DISTRO", "containerd", "etcd", "apiserver-proxy", "kubelet", "CRI SOCKET"]
    assert rows[1] == ["node1", "debian 12 (bookworm)", "active 1.6.20~ds1", "-", "-", "-", "/run/containerd/containerd.sock"]
    assert rows[2] == ["node2", "unreachable: ssh: connect timed out"]
    text = lab_summary.format_rows(rows)
    assert text.splitlines()[1].split() == ["node1", "debian", "12", "(bookworm)", "active", "1.6.20~ds1", "-", "-", "-",
                                            "/run/containerd/containerd.sock"]
    assert text.splitlines()[2] == "node2 unreachable: ssh: connect timed out"


def test_summary_of_an_inventory_without_hosts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lab_summary.shutil, "which", lambda _name: None)
    assert lab_summary.main(["--inventory", write(tmp_path, "all:\n  hosts: {}\n")]) == 1
    assert "has no hosts" in capsys.readouterr().err
