# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight doctor's checks: each finds one cause of a failing ``kubeadm init``/``join`` before it runs.

Every check takes the :class:`_node_doctor.Host` and the module's parameters and returns one row
(:func:`_node_doctor.result`) whose cause says what is wrong, with the evidence, and whose fix names the
variable or command. The kubeadm error each one prevents is listed in the collection README
("Troubleshooting").
"""

from __future__ import annotations

import re

from ansible_collections.kubeforge.cluster.plugins.module_utils import _node_doctor_runtime as runtime
from ansible_collections.kubeforge.cluster.plugins.module_utils._kernel_modules import BUILTIN, LOADED
from ansible_collections.kubeforge.cluster.plugins.module_utils._node_doctor import FAIL, PASS, SKIP, WARN, result

IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
# Ports kubeadm's preflight checks (Port-NNNN) and the process that owns each in a running cluster.
CONTROL_PLANE_PORTS = {10257: "kube-controller", 10259: "kube-scheduler", 10250: "kubelet"}
ETCD_PORTS = {2379: "etcd", 2380: "etcd"}
WORKER_PORTS = {10250: "kubelet"}
PROXY_PROCESSES = ("nginx", "haproxy", "envoy", "kube-apiserver-proxy")
STALE_FILES = ("/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf", "/etc/kubernetes/kubelet.conf",
               "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf", "/etc/kubernetes/pki/ca.crt",
               "/etc/kubernetes/bootstrap-kubelet.conf")
_NODE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _selected_runtime(host, params):
    endpoints, selected, _error = host.cri(params["cri_socket"])
    for entry in endpoints:
        if entry["endpoint"] == selected:
            return entry.get("runtime")
    return "cri-dockerd" if params["container_runtime"] == "docker" else "containerd"


def check_cri_endpoint(host, params):
    endpoints, selected, error = host.cri(params["cri_socket"])
    if selected:
        entry = next((e for e in endpoints if e["endpoint"] == selected), {})
        return result("cri_endpoint", PASS, evidence="%s (%s %s)" % (selected, entry.get("runtime"), entry.get("runtime_version") or ""))
    usable = [e["endpoint"] for e in endpoints if e.get("cri") and not e.get("alias_of")]
    if len(usable) > 1:
        return result("cri_endpoint", FAIL, "several CRI endpoints answer and none is chosen: %s (kubeadm: \"Found multiple CRI endpoints "
                      "on the host\")" % ", ".join(usable),
                      "set kubeforge_cri_socket to the one kubelet must use, e.g. kubeforge_cri_socket: %s" % usable[0])
    return result("cri_endpoint", FAIL, error or "no CRI endpoint found",
                  "install and start the container runtime (roles kubeforge.cluster.containerd or cri-dockerd), or set "
                  "kubeforge_cri_socket to its socket")


def check_containerd_cri_plugin(host, params):
    view = runtime.read_containerd(host)
    endpoints, _selected, _error = host.cri(params["cri_socket"])
    probe = next((e for e in endpoints if e.get("runtime") == "containerd" and e.get("cri") is False and e.get("exists")), None)
    if view is None and probe is None:
        return result("containerd_cri_plugin", SKIP, evidence="containerd is not installed")
    if view is not None and view.get("cri_disabled"):
        return result("containerd_cri_plugin", FAIL,
                      "containerd's CRI plugin is disabled: disabled_plugins = %s in %s (as the containerd.io/docker packages ship it); "
                      "kubeadm fails with \"container runtime is not running ... unknown service runtime.v1.RuntimeService\"" % (
                          view["disabled_plugins"], view["source"]),
                      "remove %s from disabled_plugins in %s and restart containerd (the kubeforge.cluster.containerd role does it)" % (
                          " and ".join('"%s"' % p for p in view["cri_disabled"]), runtime.CONTAINERD_CONFIG))
    if probe is not None:
        return result("containerd_cri_plugin", FAIL, "containerd at %s does not serve the CRI: %s" % (probe["endpoint"], probe["reason"]),
                      "enable the cri plugin in %s and restart containerd" % runtime.CONTAINERD_CONFIG)
    if view is not None and view.get("error"):
        return result("containerd_cri_plugin", WARN, "cannot read containerd's configuration (%s): %s" % (view["source"], view["error"]),
                      "fix %s; containerd config dump must succeed" % runtime.CONTAINERD_CONFIG)
    return result("containerd_cri_plugin", PASS, evidence="no CRI plugin in disabled_plugins (%s)" % view["source"])


def check_sandbox_image(host, params):
    expected = params["sandbox_image"]
    if not expected:
        return result("sandbox_image", SKIP, evidence="no expected image given (kubernetes_version/sandbox_image)")
    kind = _selected_runtime(host, params)
    if kind == "cri-dockerd":
        processes = host.find_process("cri-dockerd")
        if not processes:
            return result("sandbox_image", SKIP, evidence="cri-dockerd is not running")
        actual = runtime.flag_value(processes[0]["argv"], "--pod-infra-container-image")
        source = "cri-dockerd --pod-infra-container-image"
        fix = "start cri-dockerd with --pod-infra-container-image=%s (kubeforge_sandbox_image)" % expected
    else:
        view = runtime.read_containerd(host)
        if view is None or view.get("error"):
            return result("sandbox_image", SKIP, evidence="containerd's configuration is not readable")
        if view["cri_disabled"]:
            return result("sandbox_image", SKIP, evidence="containerd's CRI plugin is disabled (containerd_cri_plugin)")
        actual = view.get("sandbox_image")
        source = "containerd (%s)" % view["source"]
        fix = "set kubeforge_sandbox_image to %s and converge the containerd role (or sandbox_image in %s), then restart containerd" % (
            expected, runtime.CONTAINERD_CONFIG)
    if actual == expected:
        return result("sandbox_image", PASS, evidence="%s uses %s" % (source, actual))
    return result("sandbox_image", FAIL,
                  "%s uses %s but kubeadm expects %s: pods wait on a pause image nobody pulled (\"failed to get sandbox image\")" % (
                      source, actual or "its built-in default", expected), fix)


def check_cgroup_driver(host, params):
    wanted = params["cgroup_driver"]
    kind = _selected_runtime(host, params)
    if kind == "cri-dockerd":
        actual = runtime.docker_cgroup_driver(host)
        source = "docker info"
    else:
        view = runtime.read_containerd(host)
        if view is not None and view.get("cri_disabled"):
            return result("cgroup_driver", SKIP, evidence="containerd's CRI plugin is disabled (containerd_cri_plugin)")
        actual = None if view is None or view.get("error") else ("systemd" if view["systemd_cgroup"] else "cgroupfs")
        source = "containerd SystemdCgroup (%s)" % (view or {}).get("source")
    kubelet = runtime.kubelet_cgroup_driver(host)
    if actual is None:
        return result("cgroup_driver", SKIP, evidence="the runtime's cgroup driver cannot be read")
    problems = []
    if actual != wanted:
        problems.append("the runtime uses %s (%s) but kubeforge_cgroup_driver is %s" % (actual, source, wanted))
    if kubelet and kubelet != actual:
        problems.append("the kubelet's /var/lib/kubelet/config.yaml says cgroupDriver: %s while the runtime uses %s" % (kubelet, actual))
    if problems:
        return result("cgroup_driver", FAIL, "; ".join(problems) + " (kubelet fails: \"misconfiguration: kubelet cgroup driver ... is "
                      "different from docker cgroup driver\")",
                      "set kubeforge_cgroup_driver: %s on this node (it feeds the runtime and the KubeletConfiguration) and converge both" % wanted)
    return result("cgroup_driver", PASS, evidence="%s everywhere (%s%s)" % (actual, source, ", kubelet config" if kubelet else ""))


def check_cri_dockerd_cni(host, params):
    processes = host.find_process("cri-dockerd")
    if not processes:
        return result("cri_dockerd_cni", SKIP, evidence="cri-dockerd is not running")
    plugin = runtime.flag_value(processes[0]["argv"], "--network-plugin")
    if plugin == "cni":
        return result("cri_dockerd_cni", PASS, evidence="cri-dockerd (pid %d) --network-plugin=cni" % processes[0]["pid"])
    return result("cri_dockerd_cni", FAIL,
                  "cri-dockerd (pid %d) runs with %s: pods get Docker's bridge addresses outside the pod subnet, Services break "
                  "(\"Docker cri networking managed by network plugin kubernetes.io/no-op\")" % (
                      processes[0]["pid"], "--network-plugin=%s" % plugin if plugin else "no --network-plugin"),
                  "add --network-plugin=cni to cri-dockerd's ExecStart (cri-docker.service) and restart it")


def check_swap(host, params):
    lines = (host.read("/proc/swaps") or "").splitlines()[1:]
    active = [line.split()[:2] for line in lines if line.strip()]
    if not active:
        return result("swap", PASS, evidence="no active swap (/proc/swaps)")
    described = ", ".join("%s (%s)" % (name, kind) for name, kind in active)
    if params["kubelet_swap"]:
        return result("swap", PASS, evidence="swap on (%s) and the kubelet configured for it (kubeadm_kubelet_swap)" % described)
    return result("swap", FAIL, "swap is on: %s; the kubelet refuses to start (\"running with swap on is not supported\")" % described,
                  "swapoff -a and remove the swap entries from /etc/fstab (kubeforge.cluster.node_prep does it), or set "
                  "kubeadm_kubelet_swap: true")


def _sysctl(host, key):
    value = host.read("/proc/sys/" + key.replace(".", "/"))
    return value.strip() if value is not None else None


def check_br_netfilter(host, params):
    status, evidence = host.kernel.probe("br_netfilter")
    values = {key: _sysctl(host, key) for key in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")}
    if status not in (LOADED, BUILTIN) and values["net.bridge.bridge-nf-call-iptables"] is None:
        return result("br_netfilter", FAIL, "kernel module br_netfilter is not active (%s): bridged pod traffic bypasses iptables "
                      "(kubeadm: \"/proc/sys/net/bridge/bridge-nf-call-iptables does not exist\")" % evidence,
                      "modprobe br_netfilter and list it in /etc/modules-load.d (kubeforge.cluster.node_prep does both)")
    wrong = ["%s=%s" % (key, value) for key, value in values.items() if value != "1"]
    if wrong:
        return result("br_netfilter", FAIL, "%s: bridged pod traffic bypasses iptables (kubeadm: \"bridge-nf-call-iptables contents are "
                      "not set to 1\")" % ", ".join(wrong),
                      "sysctl -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 and persist them in "
                      "/etc/sysctl.d (kubeforge.cluster.node_prep does it)")
    return result("br_netfilter", PASS, evidence="br_netfilter %s, bridge-nf-call-iptables=1, bridge-nf-call-ip6tables=1" % status)


def check_ip_forward(host, params):
    value = _sysctl(host, "net.ipv4.ip_forward")
    if value == "1":
        return result("ip_forward", PASS, evidence="net.ipv4.ip_forward=1")
    return result("ip_forward", FAIL, "net.ipv4.ip_forward=%s: the node does not route pod traffic (kubeadm: \"/proc/sys/net/ipv4/ip_forward "
                  "contents are not set to 1\")" % value,
                  "sysctl -w net.ipv4.ip_forward=1 and persist it in /etc/sysctl.d (kubeforge.cluster.node_prep does it)")


def check_ipvs_modules(host, params):
    if params["kube_proxy_mode"] != "ipvs":
        return result("ipvs_modules", SKIP, evidence="kube-proxy mode %s" % params["kube_proxy_mode"])
    missing = {}
    for name in IPVS_MODULES:
        status, evidence = host.kernel.probe(name)
        if status not in (LOADED, BUILTIN):
            missing.setdefault(evidence if status == "missing" else "loadable but not loaded", []).append(name)
    if missing:
        found = "; ".join("%s: %s" % (", ".join(names), why) for why, names in missing.items())
        return result("ipvs_modules", FAIL, "kube-proxy mode ipvs needs the IPVS modules - %s; kube-proxy cannot use the IPVS proxier "
                      "(\"can't use the IPVS proxier\")" % found, "load the modules (kubeforge.cluster.node_prep with "
                      "node_prep_kube_proxy_mode: ipvs), or set kubeadm_kube_proxy_mode: nftables or iptables")
    return result("ipvs_modules", PASS, evidence="%s present" % ", ".join(IPVS_MODULES))


def _split(endpoint):
    host, _sep, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def _cluster_member(host):
    return host.exists("/etc/kubernetes/kubelet.conf") and bool(host.find_process("kubelet"))


def check_apiserver_proxy(host, params):
    if not params["apiserver_proxy"]:
        return result("apiserver_proxy", SKIP, evidence="no apiserver proxy configured (kubeadm_apiserver_proxy)")
    address, port = _split(params["apiserver_proxy_endpoint"])
    try:
        host.connect(address, port, params["timeout"])
    except OSError as exc:
        return result("apiserver_proxy", FAIL, "nothing answers on %s (%s): kubeadm and the kubelet reach the API through it "
                      "(\"dial tcp %s: connect: connection refused\")" % (params["apiserver_proxy_endpoint"], exc, params["apiserver_proxy_endpoint"]),
                      "converge the apiserver_proxy role on this node (playbooks/apiserver_proxy.yml) and check its service")
    live, dead = [], []
    for backend in params["apiserver_backends"]:
        try:
            host.connect(*_split(backend), timeout=params["timeout"])
            live.append(backend)
        except OSError as exc:
            dead.append("%s (%s)" % (backend, exc))
    if live or not params["apiserver_backends"]:
        return result("apiserver_proxy", PASS, evidence="%s listens; live upstream: %s" % (
            params["apiserver_proxy_endpoint"], ", ".join(live) or "not checked"))
    status = FAIL if _cluster_member(host) else WARN
    return result("apiserver_proxy", status, "%s listens but no upstream API server answers: %s" % (params["apiserver_proxy_endpoint"], "; ".join(dead)),
                  "expected before kubeadm init; afterwards start the API servers or fix apiserver_proxy's backend list/port "
                  "(apiserver_proxy_backend_port = kubeadm_apiserver_bind_port)")


def check_ports(host, params):
    wanted = dict(WORKER_PORTS)
    if params["control_plane"]:
        wanted.update(CONTROL_PLANE_PORTS)
        wanted[params["apiserver_bind_port"]] = "kube-apiserver"
        if params["etcd_mode"] == "stacked":
            wanted.update(ETCD_PORTS)
    listening = host.listening()
    owners = host.socket_owners() if any(port in listening for port in wanted) else {}
    taken, ours = [], []
    for port, expected in sorted(wanted.items()):
        for sock in listening.get(port, []):
            owner = owners.get(sock["inode"])
            name = owner["comm"] if owner else "an unknown process"
            if owner and owner["comm"] == expected[:15]:
                ours.append("%d (%s)" % (port, name))
            else:
                taken.append("%d by %s%s" % (port, name, " (pid %d)" % owner["pid"] if owner else ""))
                break
    if taken:
        port = taken[0].split()[0]
        cause = "ports kubeadm needs are taken: %s (kubeadm: \"[ERROR Port-%s]: Port %s is in use\")" % (", ".join(taken), port, port)
        return result("ports", FAIL, cause, "stop the process on the port, or move the API server with kubeadm_apiserver_bind_port")
    free = ", ".join(str(p) for p in sorted(wanted) if p not in listening) or "none"
    return result("ports", PASS, evidence="free: %s%s" % (free, "; in use by the cluster: %s" % ", ".join(ours) if ours else ""))


def check_hostname(host, params):
    name = params["node_name"] or host.hostname()
    if not _NODE_NAME_RE.match(name):
        return result("hostname", FAIL, "node name %r is not a lowercase RFC 1123 name; kubeadm refuses it (\"a lowercase RFC 1123 subdomain "
                      "must consist of lower case alphanumeric characters\")" % name,
                      "set kubeadm_node_name to a lowercase name, or rename the host (hostnamectl set-hostname %s)" % name.lower())
    try:
        addresses = sorted({info[4][0] for info in host.resolve(name, None)})
    except OSError as exc:
        return result("hostname", WARN, "node name %s does not resolve (%s); kubeadm warns \"hostname %s could not be reached\"" % (name, exc, name),
                      "add it to /etc/hosts or DNS")
    return result("hostname", PASS, evidence="%s resolves to %s" % (name, ", ".join(addresses)))


def check_stale_state(host, params):
    found = [path for path in STALE_FILES if host.exists(path)]
    manifests = host.listdir("/etc/kubernetes/manifests")
    found += ["/etc/kubernetes/manifests/" + name for name in manifests]
    if params["control_plane"] and params["etcd_mode"] == "stacked" and host.listdir("/var/lib/etcd"):
        found.append("/var/lib/etcd")
    if not found:
        return result("stale_state", PASS, evidence="no files of an earlier cluster in /etc/kubernetes or /var/lib/etcd")
    if _cluster_member(host):
        return result("stale_state", PASS, evidence="cluster member: kubelet running with /etc/kubernetes/kubelet.conf")
    return result("stale_state", FAIL, "files of an earlier cluster while no kubelet runs: %s (kubeadm: \"[ERROR FileAvailable--etc-kubernetes-"
                  "manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists\")" % ", ".join(found[:6]),
                  "kubeadm reset -f --cri-socket <kubeforge_cri_socket>, then remove /etc/kubernetes/manifests, /etc/kubernetes/pki and "
                  "/var/lib/etcd if they remain")


CHECKS = (
    ("cri_endpoint", check_cri_endpoint),
    ("containerd_cri_plugin", check_containerd_cri_plugin),
    ("sandbox_image", check_sandbox_image),
    ("cgroup_driver", check_cgroup_driver),
    ("cri_dockerd_cni", check_cri_dockerd_cni),
    ("swap", check_swap),
    ("br_netfilter", check_br_netfilter),
    ("ip_forward", check_ip_forward),
    ("ipvs_modules", check_ipvs_modules),
    ("apiserver_proxy", check_apiserver_proxy),
    ("ports", check_ports),
    ("hostname", check_hostname),
    ("stale_state", check_stale_state),
)
CHECK_NAMES = tuple(name for name, _check in CHECKS)
