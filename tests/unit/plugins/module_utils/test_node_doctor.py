# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every doctor check on fake node trees (/proc, /etc, /var/lib below tmp_path): a good node passes, each bad
state the seeds describe fails with its cause and fix. The lab scenario repeats these on real machines where it can;
swap and kernel modules are the host's kernel there, so these trees are their proof."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _node_doctor_runtime as runtime
from ansible_collections.kubeforge.cluster.plugins.module_utils._cri_socket import CriSocketError
from ansible_collections.kubeforge.cluster.plugins.module_utils._node_doctor import Host, _detect_cri, run_checks, summary
from ansible_collections.kubeforge.cluster.plugins.module_utils._node_doctor_checks import CHECKS

CONTAINERD = "unix:///run/containerd/containerd.sock"
DOCKERD = "unix:///run/cri-dockerd.sock"
PAUSE = "registry.k8s.io/pause:3.10.2"
GOOD_CONFIG = '''version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%s"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
''' % PAUSE
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def endpoint(url, runtime_name, cri=True, reason="answers"):
    return {"endpoint": url, "path": url[7:], "exists": True, "listening": True, "cri": cri, "cri_api": "v1" if cri else None,
            "runtime": runtime_name, "runtime_version": "1.6.20", "reason": reason, "alias_of": None}


class Node:
    """A fake node below tmp_path; ``host()`` gives the doctor's view of it."""

    def __init__(self, root):
        self.root = Path(root)
        self.commands = {}
        self.endpoints = [endpoint(CONTAINERD, "containerd")]
        self.connectable = set()
        self.names = {"node1": ["10.1.0.11"]}
        self.write("/proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
        for key in ("net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables", "net/ipv4/ip_forward"):
            self.write("/proc/sys/" + key, "1\n")
        self.write("/proc/sys/kernel/osrelease", "6.1.0-test\n")
        self.write("/proc/modules", "br_netfilter 32768 0 - Live 0x0\noverlay 151552 0 - Live 0x0\n")
        self.write("/proc/net/tcp", TCP_HEADER)
        self.write("/proc/net/tcp6", TCP_HEADER)
        self.write("/etc/containerd/config.toml", GOOD_CONFIG)
        self.process(1, "systemd", ["/sbin/init"])

    def write(self, path, text):
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def process(self, pid, comm, argv, sockets=()):
        self.write("/proc/%d/comm" % pid, comm + "\n")
        self.write("/proc/%d/cmdline" % pid, "\x00".join(argv) + "\x00")
        fd_dir = self.root / ("proc/%d/fd" % pid)
        fd_dir.mkdir(parents=True, exist_ok=True)
        for index, inode in enumerate(sockets):
            os.symlink("socket:[%s]" % inode, fd_dir / str(index + 3))

    def listen(self, port, inode, v6=False):
        line = "   0: %s:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %s 1\n" % (
            "00000000000000000000000000000000" if v6 else "00000000", port, inode)
        table = self.root / ("proc/net/tcp6" if v6 else "proc/net/tcp")
        table.write_text(table.read_text() + line)

    def host(self):
        def run(argv):
            return self.commands.get((os.path.basename(argv[0]),) + tuple(argv[1:3]), (1, "", "not scripted"))

        def which(name):
            return "/usr/bin/" + name if any(key[0] == name for key in self.commands) else None

        def detect(preferred):
            usable = [e for e in self.endpoints if e["cri"]]
            if preferred:
                return self.endpoints, preferred
            if len(usable) == 1:
                return self.endpoints, usable[0]["endpoint"]
            raise CriSocketError("Found multiple CRI endpoints" if usable else "No CRI endpoint found", self.endpoints)

        def connect(host, port, timeout):
            if (host, port) not in self.connectable:
                raise ConnectionRefusedError(111, "Connection refused")

        def resolve(name, port):
            if name not in self.names:
                raise OSError(-2, "Name or service not known")
            return [(2, 1, 6, "", (address, 0)) for address in self.names[name]]

        return Host(root=str(self.root), run=run, which=which, cri_detect=detect, connect=connect, resolve=resolve,
                    hostname=lambda: "node1")


PARAMS = dict(checks=[], cri_socket="", container_runtime="containerd", sandbox_image=PAUSE, cgroup_driver="systemd",
              kube_proxy_mode="iptables", kubelet_swap=False, apiserver_proxy=False, apiserver_proxy_endpoint="127.0.0.1:6443",
              apiserver_backends=[], apiserver_bind_port=6443, control_plane=True, etcd_mode="stacked", node_name="", timeout=1.0)


def rows(node, **params):
    return {row["name"]: row for row in run_checks(node.host(), dict(PARAMS, **params), CHECKS)}


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def test_a_good_node_passes_everything_that_applies(node):
    found = rows(node)
    assert {name: row["status"] for name, row in found.items()} == {
        "cri_endpoint": "pass", "containerd_cri_plugin": "pass", "sandbox_image": "pass", "cgroup_driver": "pass",
        "cri_dockerd_cni": "skip", "swap": "pass", "br_netfilter": "pass", "ip_forward": "pass", "ipvs_modules": "skip",
        "apiserver_proxy": "skip", "ports": "pass", "hostname": "pass", "stale_state": "pass"}
    assert found["sandbox_image"]["evidence"] == "containerd (%s) uses %s" % (runtime.CONTAINERD_CONFIG, PAUSE)
    assert summary(found.values()) == {"pass": 10, "warn": 0, "fail": 0, "skip": 3}


def test_containerd_with_the_cri_plugin_disabled(node):
    # containerd.io as Docker ships it: a version 1 file that disables the CRI plugin
    node.write("/etc/containerd/config.toml", 'disabled_plugins = ["cri"]\n')
    node.endpoints = [endpoint(CONTAINERD, "containerd", cri=False, reason="its plugin list has no cri plugin")]
    row = rows(node)["containerd_cri_plugin"]
    assert row["status"] == "fail"
    assert row["cause"].startswith("containerd's CRI plugin is disabled: disabled_plugins = ['cri'] in /etc/containerd/config.toml")
    assert row["fix"] == ('remove "cri" from disabled_plugins in /etc/containerd/config.toml and restart containerd '
                          "(the kubeforge.cluster.containerd role does it)")
    # what the CRI plugin would configure is not in use: no second-hand failures
    found = rows(node)
    assert found["sandbox_image"]["status"] == "skip" and found["cgroup_driver"]["status"] == "skip"


def test_config_dump_is_preferred_over_the_file(node):
    node.commands[("containerd", "config", "dump")] = (0, 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n', "")
    row = rows(node)["containerd_cri_plugin"]
    assert row["status"] == "fail" and "in containerd config dump" in row["cause"]


def test_sandbox_image_differs_from_kubeadms(node):
    node.write("/etc/containerd/config.toml", GOOD_CONFIG.replace(PAUSE, "registry.k8s.io/pause:3.6"))
    row = rows(node)["sandbox_image"]
    assert row["status"] == "fail"
    assert row["cause"].startswith("containerd (/etc/containerd/config.toml) uses registry.k8s.io/pause:3.6 but kubeadm expects %s" % PAUSE)
    assert "kubeforge_sandbox_image" in row["fix"]


def test_several_cri_endpoints_without_a_choice(node):
    node.endpoints.append(endpoint(DOCKERD, "cri-dockerd"))
    row = rows(node)["cri_endpoint"]
    assert row["status"] == "fail"
    assert row["cause"].startswith("several CRI endpoints answer and none is chosen: %s, %s" % (CONTAINERD, DOCKERD))
    assert row["fix"] == "set kubeforge_cri_socket to the one kubelet must use, e.g. kubeforge_cri_socket: %s" % CONTAINERD
    assert rows(node, cri_socket=DOCKERD)["cri_endpoint"]["status"] == "pass"


def test_cgroup_driver_mismatch_runtime_and_kubelet(node):
    node.write("/etc/containerd/config.toml", GOOD_CONFIG.replace("SystemdCgroup = true", "SystemdCgroup = false"))
    node.write("/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n")
    row = rows(node)["cgroup_driver"]
    assert row["status"] == "fail"
    assert row["cause"].startswith("the runtime uses cgroupfs (containerd SystemdCgroup (/etc/containerd/config.toml)) but "
                                   "kubeforge_cgroup_driver is systemd; the kubelet's /var/lib/kubelet/config.yaml says cgroupDriver: systemd")
    assert rows(node, cgroup_driver="cgroupfs")["cgroup_driver"]["status"] == "fail"  # the kubelet still disagrees


def test_cri_dockerd_without_the_cni_network_plugin(node):
    node.endpoints = [endpoint(DOCKERD, "cri-dockerd")]
    node.commands[("docker", "info", "--format")] = (0, "systemd\n", "")
    node.process(400, "cri-dockerd", ["/usr/local/bin/cri-dockerd", "--container-runtime-endpoint", "unix:///run/cri-dockerd.sock",
                                      "--pod-infra-container-image=" + PAUSE])
    found = rows(node)
    assert found["cri_dockerd_cni"]["status"] == "fail"
    assert found["cri_dockerd_cni"]["cause"].startswith("cri-dockerd (pid 400) runs with no --network-plugin")
    assert found["sandbox_image"]["status"] == "pass" and found["cgroup_driver"]["status"] == "pass"


def test_cri_dockerd_with_cni_passes(node):
    node.endpoints = [endpoint(DOCKERD, "cri-dockerd")]
    node.process(400, "cri-dockerd", ["/usr/local/bin/cri-dockerd", "--network-plugin", "cni"])
    found = rows(node)
    assert found["cri_dockerd_cni"]["status"] == "pass"
    assert found["sandbox_image"]["cause"].startswith("cri-dockerd --pod-infra-container-image uses its built-in default but kubeadm")


def test_swap_on_a_file(node):
    node.write("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swapfile                               file\t\t1048572\t0\t-2\n")
    row = rows(node)["swap"]
    assert row["status"] == "fail" and row["cause"].startswith("swap is on: /swapfile (file)")
    assert rows(node, kubelet_swap=True)["swap"]["status"] == "pass"


def test_bridge_netfilter_and_ip_forward(node):
    node.write("/proc/sys/net/ipv4/ip_forward", "0\n")
    node.write("/proc/sys/net/bridge/bridge-nf-call-iptables", "0\n")
    found = rows(node)
    assert found["ip_forward"]["status"] == "fail" and found["ip_forward"]["cause"].startswith("net.ipv4.ip_forward=0")
    assert found["br_netfilter"]["cause"].startswith("net.bridge.bridge-nf-call-iptables=0")
    (node.root / "proc/sys/net/bridge/bridge-nf-call-iptables").unlink()
    node.write("/proc/modules", "overlay 151552 0 - Live 0x0\n")
    assert rows(node)["br_netfilter"]["cause"].startswith("kernel module br_netfilter is not active")


def test_ipvs_mode_without_the_modules(node):
    row = rows(node, kube_proxy_mode="ipvs")["ipvs_modules"]
    assert row["status"] == "fail"
    assert row["cause"].startswith("kube-proxy mode ipvs needs the IPVS modules - ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, nf_conntrack:")
    node.write("/proc/modules", "ip_vs 1 0 - Live 0\nip_vs_rr 1 0 - Live 0\nip_vs_wrr 1 0 - Live 0\nip_vs_sh 1 0 - Live 0\nnf_conntrack 1 0 - Live 0\n")
    assert rows(node, kube_proxy_mode="ipvs")["ipvs_modules"]["status"] == "pass"


def test_apiserver_proxy_not_listening_or_without_upstream(node):
    params = dict(apiserver_proxy=True, apiserver_bind_port=5443, apiserver_backends=["10.1.0.11:5443", "10.1.0.12:5443"])
    row = rows(node, **params)["apiserver_proxy"]
    assert row["status"] == "fail" and row["cause"].startswith("nothing answers on 127.0.0.1:6443")
    node.connectable.add(("127.0.0.1", 6443))
    row = rows(node, **params)["apiserver_proxy"]
    assert row["status"] == "warn"  # no cluster yet: the API servers come with kubeadm init
    assert row["cause"].startswith("127.0.0.1:6443 listens but no upstream API server answers: 10.1.0.11:5443")
    node.write("/etc/kubernetes/kubelet.conf", "apiVersion: v1\n")
    node.process(500, "kubelet", ["/usr/bin/kubelet"])
    assert rows(node, **params)["apiserver_proxy"]["status"] == "fail"
    node.connectable.add(("10.1.0.12", 5443))
    assert rows(node, **params)["apiserver_proxy"]["status"] == "pass"


def test_ports_taken_by_a_stranger_or_by_the_cluster(node):
    node.process(321, "python3", ["python3", "-m", "http.server", "6443"], sockets=["9001"])
    node.listen(6443, "9001")
    row = rows(node)["ports"]
    assert row["status"] == "fail"
    assert row["cause"] == ('ports kubeadm needs are taken: 6443 by python3 (pid 321) (kubeadm: "[ERROR Port-6443]: Port 6443 is in use")')
    # with the apiserver proxy on 6443 the API server binds 5443: 6443 is not the kubeadm's to claim
    assert rows(node, apiserver_bind_port=5443)["ports"]["status"] == "pass"
    node.process(600, "kubelet", ["/usr/bin/kubelet"], sockets=["9002"])
    node.listen(10250, "9002", v6=True)
    assert "in use by the cluster: 10250 (kubelet)" in rows(node, apiserver_bind_port=5443)["ports"]["evidence"]


def test_hostname_not_lowercase_or_not_resolvable(node):
    row = rows(node, node_name="Node1")["hostname"]
    assert row["status"] == "fail" and row["fix"].endswith("(hostnamectl set-hostname node1)")
    row = rows(node, node_name="node9")["hostname"]
    assert row["status"] == "warn" and "node9 does not resolve" in row["cause"]


def test_stale_state_of_an_earlier_cluster(node):
    node.write("/etc/kubernetes/manifests/kube-apiserver.yaml", "kind: Pod\n")
    node.write("/etc/kubernetes/pki/ca.crt", "cert\n")
    node.write("/var/lib/etcd/member/snap/db", "")
    node.write("/etc/kubernetes/kubeadm/init.yaml", "# ours, not stale\n")
    row = rows(node)["stale_state"]
    assert row["status"] == "fail"
    assert row["cause"].startswith("files of an earlier cluster while no kubelet runs: /etc/kubernetes/pki/ca.crt, "
                                   "/etc/kubernetes/manifests/kube-apiserver.yaml, /var/lib/etcd")
    node.write("/etc/kubernetes/kubelet.conf", "apiVersion: v1\n")
    node.process(500, "kubelet", ["/usr/bin/kubelet"])
    assert rows(node)["stale_state"]["status"] == "pass"


def test_a_broken_check_is_reported_not_raised(node):
    def explode(host, params):
        raise RuntimeError("boom")

    found = run_checks(node.host(), PARAMS, [("exploding", explode)])
    assert found == [{"name": "exploding", "status": "fail", "cause": "the check itself failed: RuntimeError: boom",
                      "fix": "report this as a bug of kubeforge.cluster.node_doctor", "evidence": ""}]


@pytest.mark.parametrize("text,expected", [
    (GOOD_CONFIG, {"version": 2, "sandbox_image": PAUSE, "systemd_cgroup": True, "cri_disabled": []}),
    ('version = 3\n[plugins."io.containerd.cri.v1.images".pinned_images]\n  sandbox = "x/pause:1"\n'
     '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n',
     {"version": 3, "sandbox_image": "x/pause:1", "systemd_cgroup": True, "cri_disabled": []}),
    ('disabled_plugins = [\n  "cri", # as shipped\n]\n[plugins.cri]\n  sandbox_image = "k8s.gcr.io/pause:3.1"  # old\n  systemd_cgroup = false\n',
     {"version": 1, "sandbox_image": "k8s.gcr.io/pause:3.1", "systemd_cgroup": False, "cri_disabled": ["cri"]}),
])
@pytest.mark.parametrize("reader", ["tomllib", "subset"])
def test_containerd_config_readers_agree(monkeypatch, text, expected, reader):
    if reader == "subset":
        monkeypatch.setattr(runtime, "tomllib", None)
    view = runtime.containerd_view(text, "test")
    assert {key: view[key] for key in expected} == expected


def test_the_default_probe_uses_cri_socket_detect_as_it_is(tmp_path, monkeypatch):
    """The doctor's own probe goes through _cri_socket.detect (whose result has a selection reason too): a real socket
    file that answers nothing is found and not selected, and the failure names the endpoint."""
    from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket

    silent = tmp_path / "containerd.sock"
    silent.write_text("")
    monkeypatch.setattr(_cri_socket, "KNOWN_CRI_ENDPOINTS", ["unix://%s" % silent])
    try:
        endpoints, selected = _detect_cri("")
    except CriSocketError as exc:
        endpoints, selected = exc.endpoints, None
    assert selected is None
    assert [e["endpoint"] for e in endpoints] == ["unix://%s" % silent]
    row = run_checks(Host(root="/", cri_detect=_detect_cri), {"cri_socket": ""}, [c for c in CHECKS if c[0] == "cri_endpoint"])[0]
    assert row["status"] == "fail" and "too many values" not in row["cause"]
