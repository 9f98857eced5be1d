# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the kubeadm role's settings before anything is rendered, installed or written.

``check(options)`` returns the normalised settings or raises :class:`SettingsError` with every problem at
once, each naming the role variable it came from (``VARIABLES``) and the fix. What is checked here is what
kubeadm would only find at ``init``/``join`` time, or not at all: the version is one we have schemas for,
the API version exists in that kubeadm, subnets parse and do not overlap each other or the nodes, the
endpoint and the apiserver proxy agree, external etcd is complete, the sandbox image is the one kubeadm
expects, labels the kubelet may set on itself, and no extra setting overrides a value another variable owns.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.kubeforge.cluster.plugins.module_utils import _kubeadm_versions as versions
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, host_name

# option -> the role variable users set it with (errors name these)
VARIABLES = {
    "kubernetes_version": "kubeadm_kubernetes_version", "api_version": "kubeadm_config_api_version",
    "node_name": "kubeadm_node_name", "advertise_address": "kubeadm_advertise_address",
    "cri_socket": "kubeforge_cri_socket", "control_plane_endpoint": "kubeadm_control_plane_endpoint",
    "apiserver_proxy": "kubeadm_apiserver_proxy", "apiserver_proxy_endpoint": "kubeadm_apiserver_proxy_endpoint",
    "apiserver_bind_port": "kubeadm_apiserver_bind_port", "control_plane_count": "groups['control_plane']",
    "etcd_mode": "kubeadm_etcd_mode", "etcd_endpoints": "kubeadm_etcd_external_endpoints", "etcd_ca_file": "kubeadm_etcd_ca_file",
    "etcd_cert_file": "kubeadm_etcd_cert_file", "etcd_key_file": "kubeadm_etcd_key_file",
    "image_repository": "kubeadm_image_repository", "pod_subnet": "kubeadm_pod_subnet", "service_subnet": "kubeadm_service_subnet",
    "dns_domain": "kubeadm_dns_domain", "node_addresses": "ansible_host of the kube_nodes", "cert_sans": "kubeadm_cert_sans",
    "cgroup_driver": "kubeforge_cgroup_driver", "sandbox_image": "kubeforge_sandbox_image",
    "kube_proxy_mode": "kubeadm_kube_proxy_mode", "ipvs_scheduler": "kubeadm_ipvs_scheduler",
    "node_labels": "kubeadm_node_labels", "node_taints": "kubeadm_node_taints",
    "kubelet_config": "kubeadm_kubelet_config", "kube_proxy_config": "kubeadm_kube_proxy_config",
    "cluster_config": "kubeadm_cluster_config", "apiserver_extra_args": "kubeadm_apiserver_extra_args",
    "controller_manager_extra_args": "kubeadm_controller_manager_extra_args",
    "scheduler_extra_args": "kubeadm_scheduler_extra_args", "kubelet_extra_args": "kubeadm_kubelet_extra_args",
    "kubelet_swap": "kubeadm_kubelet_swap", "bootstrap_token": "kubeadm_bootstrap_token",
    "bootstrap_token_ttl": "kubeadm_bootstrap_token_ttl", "discovery_ca_cert_hashes": "kubeadm_discovery_ca_cert_hashes",
    "certificate_key": "kubeadm_certificate_key", "cluster_name": "kubeadm_cluster_name", "node_role": "the control_plane group",
    "first_control_plane_address": "ansible_host of the first control_plane node",
}
PROXY_MODES = ("iptables", "ipvs", "nftables")
CGROUP_DRIVERS = ("systemd", "cgroupfs")
IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
# Keys of the extra-settings dicts that another variable owns (one concept, one name).
OWNED = {
    "kubelet_config": {"cgroupDriver": "cgroup_driver", "failSwapOn": "kubelet_swap", "containerRuntimeEndpoint": "cri_socket"},
    "kube_proxy_config": {"mode": "kube_proxy_mode", "clusterCIDR": "pod_subnet"},
    "cluster_config": {"kubernetesVersion": "kubernetes_version", "controlPlaneEndpoint": "control_plane_endpoint",
                       "imageRepository": "image_repository", "networking": "pod_subnet", "etcd": "etcd_mode",
                       "clusterName": "cluster_name"},
}
_TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
_CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CERT_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_LABEL_NAME_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# What the kubelet may label its own Node with (NodeRestriction): kubernetes.io/k8s.io names outside these are refused.
_SELF_LABELS = {"kubernetes.io/hostname", "kubernetes.io/instance-type", "kubernetes.io/os", "kubernetes.io/arch",
                "beta.kubernetes.io/instance-type", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
                "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
                "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "node.kubernetes.io/instance-type"}
_SELF_LABEL_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")


class SettingsError(Exception):
    """Settings that cannot make a working configuration; ``problems`` lists ``(variable, message)``."""

    def __init__(self, problems):
        self.problems = problems
        Exception.__init__(self, "; ".join("%s: %s" % problem for problem in problems))


class _Checker:
    def __init__(self, options):
        self.options = options
        self.problems = []
        self.warnings = []

    def fail(self, option, message):
        self.problems.append((VARIABLES.get(option, option), message))

    def networks(self, option):
        text = self.options.get(option) or ""
        result = []
        for part in [p.strip() for p in text.split(",")] if text else []:
            try:
                result.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                self.fail(option, "%r is not a CIDR such as 10.244.0.0/16 (dual-stack: two CIDRs separated by a comma)" % part)
        if len(result) > 2 or len({n.version for n in result}) != len(result):
            self.fail(option, "%r: at most one IPv4 and one IPv6 CIDR" % text)
        return result


def check(options):
    """Normalised settings (a copy of ``options`` plus ``minor``, ``version``, ``kubeadm_api``,
    ``kernel_modules``, ``warnings``); raises :class:`SettingsError`."""
    c = _Checker(options)
    settings = dict(options)
    try:
        minor, version = versions.parse_version(options.get("kubernetes_version"))
    except ValueError as exc:
        raise SettingsError([(VARIABLES["kubernetes_version"], str(exc))]) from None
    if minor not in versions.MINORS:
        raise SettingsError([(VARIABLES["kubernetes_version"], "Kubernetes %s is not supported: kubeforge.cluster renders and validates the "
                              "configuration of Kubernetes %s (the three newest minors); choose one of those" % (
                                  version, ", ".join(versions.supported_minors())))])
    settings.update(minor=minor, version=version, warnings=c.warnings, kernel_modules=[])
    _check_api_version(c, settings, minor)
    _check_networking(c, settings)
    _check_endpoint(c, settings)
    _check_etcd(c, settings)
    _check_runtime(c, settings, minor)
    _check_node(c, settings)
    _check_extras(c, settings)
    _check_secrets(c, settings)
    if c.problems:
        raise SettingsError(c.problems)
    return settings


def _check_api_version(c, settings, minor):
    apis = versions.MINORS[minor]["kubeadm_apis"]
    wanted = settings.get("api_version") or "auto"
    if wanted == "auto":
        wanted = apis[0]
    elif wanted not in apis:
        c.fail("api_version", "kubeadm %s does not read kubeadm.k8s.io/%s (removed in %s); use %s or auto" % (
            minor, wanted, versions.V1BETA3_REMOVED_IN, " or ".join(apis)))
    if wanted == "v1beta3" and wanted in apis:
        c.warnings.append("kubeadm.k8s.io/v1beta3 is deprecated and kubeadm %s removes it; set %s to auto (v1beta4)" % (
            versions.V1BETA3_REMOVED_IN, VARIABLES["api_version"]))
    settings["kubeadm_api"] = wanted


def _check_networking(c, settings):
    pods = c.networks("pod_subnet")
    services = c.networks("service_subnet")
    if not services:
        c.fail("service_subnet", "must be set, e.g. 10.96.0.0/12")
    for pod in pods:
        for service in services:
            if pod.version == service.version and pod.overlaps(service):
                c.fail("pod_subnet", "%s overlaps %s %s: pod and Service addresses would collide; choose disjoint ranges" % (
                    pod, VARIABLES["service_subnet"], service))
    for address in settings.get("node_addresses") or []:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue  # a host name: nothing to compare
        for option, networks in (("pod_subnet", pods), ("service_subnet", services)):
            for network in networks:
                if ip in network:
                    c.fail(option, "%s contains the node address %s: routes to pods/Services would capture node traffic; "
                                   "choose a range outside the node network" % (network, ip))
    domain = settings.get("dns_domain") or ""
    try:
        host_name(VARIABLES["dns_domain"], domain)
    except InputError as exc:
        c.fail("dns_domain", exc.problem)
    for index, san in enumerate(settings.get("cert_sans") or []):
        try:
            host_name("%s[%d]" % (VARIABLES["cert_sans"], index), san.replace("*.", "", 1) if isinstance(san, str) else san)
        except InputError as exc:
            c.problems.append((exc.option, exc.problem))


def _split_endpoint(text):
    host, _sep, port = text.rpartition(":") if text.count(":") == 1 or text.startswith("[") else (text, "", "")
    return (host or text).strip("[]"), port


def _check_endpoint(c, settings):
    """Decide ``endpoint`` (controlPlaneEndpoint and the join address): the local apiserver proxy, the given VIP/DNS
    name, or the first control-plane node's address."""
    endpoint = settings.get("control_plane_endpoint") or ""
    bind_port = settings.get("apiserver_bind_port")
    if settings.get("apiserver_proxy"):
        proxy = settings.get("apiserver_proxy_endpoint") or ""
        if endpoint and endpoint != proxy:
            c.fail("control_plane_endpoint", "%s while the apiserver proxy is used: leave it empty or set it to the proxy's %s (every node "
                                             "reaches the control plane through its local proxy)" % (endpoint, proxy))
        if _split_endpoint(proxy)[1] == str(bind_port):
            c.fail("apiserver_bind_port", "%s is the port the local apiserver proxy listens on (%s): bind the apiserver to the proxy's "
                                          "backend port (apiserver_proxy_backend_port, 5443)" % (bind_port, proxy))
        endpoint = proxy
    elif not endpoint:
        first = settings.get("first_control_plane_address") or ""
        if not first:
            c.fail("control_plane_endpoint", "is empty and no control-plane address is known: set it to a VIP or DNS name with port "
                                             "(e.g. k8s-api.example:6443) or enable %s" % VARIABLES["apiserver_proxy"])
            return
        endpoint = "%s:%s" % ("[%s]" % first if ":" in first else first, bind_port)
        if (settings.get("control_plane_count") or 1) > 1:
            c.warnings.append("%d control-plane nodes use the first one's address %s as endpoint: that node is a single point of failure; "
                              "set %s to a VIP/DNS name or enable %s" % (settings["control_plane_count"], endpoint,
                                                                         VARIABLES["control_plane_endpoint"], VARIABLES["apiserver_proxy"]))
    try:
        host_name(VARIABLES["control_plane_endpoint"], endpoint, allow_port=True)
    except InputError as exc:
        c.fail("control_plane_endpoint", exc.problem)
    settings["endpoint"] = endpoint


def _check_etcd(c, settings):
    if settings.get("etcd_mode") != "external":
        return
    endpoints = settings.get("etcd_endpoints") or []
    if not endpoints:
        c.fail("etcd_endpoints", "is empty while %s is external: list the etcd client URLs (the etcd stage exports them)" % VARIABLES["etcd_mode"])
    for endpoint in endpoints:
        if not isinstance(endpoint, str) or not re.match(r"^https?://[^/\s]+$", endpoint):
            c.fail("etcd_endpoints", "%r is not a client URL such as https://10.0.0.11:2379" % (endpoint,))
    for option in ("etcd_ca_file", "etcd_cert_file", "etcd_key_file"):
        value = settings.get(option) or ""
        if not value.startswith("/"):
            what = {"etcd_ca_file": "CA certificate", "etcd_cert_file": "certificate", "etcd_key_file": "key"}[option]
            c.fail(option, "must be the absolute path of the etcd client %s on the control-plane nodes (got %r)" % (what, value))


def _check_runtime(c, settings, minor):
    if settings.get("cgroup_driver") not in CGROUP_DRIVERS:
        c.fail("cgroup_driver", "must be systemd or cgroupfs, got %r" % (settings.get("cgroup_driver"),))
    expected = versions.expected_pause_image(minor, settings.get("image_repository") or "")
    if settings.get("sandbox_image") != expected:
        c.fail("sandbox_image", "%r differs from the pause image kubeadm %s expects, %s (from %s); the runtime and kubeadm must use one "
                                "image: set %s to %s" % (settings.get("sandbox_image"), minor, expected, VARIABLES["image_repository"],
                                                         VARIABLES["sandbox_image"], expected))
    mode = settings.get("kube_proxy_mode")
    if mode not in PROXY_MODES:
        c.fail("kube_proxy_mode", "must be one of %s, got %r" % (", ".join(PROXY_MODES), mode))
    elif mode == "ipvs":
        settings["kernel_modules"] = [{"name": name, "reason": "kube-proxy mode ipvs (%s)" % VARIABLES["kube_proxy_mode"]}
                                      for name in IPVS_MODULES]
        c.warnings.append("kube-proxy's ipvs mode is deprecated upstream since %s; nftables is its successor" % versions.IPVS_DEPRECATED_IN)
    if not settings.get("cri_socket", "").startswith("unix:///"):
        c.fail("cri_socket", "must be the node's CRI endpoint as unix:///path (kubeforge.cluster.cri_socket finds it), got %r" % (
            settings.get("cri_socket"),))


def _check_node(c, settings):
    for key, value in (settings.get("node_labels") or {}).items():
        if not isinstance(key, str) or not _LABEL_NAME_RE.match(key):
            c.fail("node_labels", "%r is not a label name (prefix/name)" % (key,))
            continue
        if not isinstance(value, str) or not _LABEL_VALUE_RE.match(value):
            c.fail("node_labels", "%s=%r: label values are strings of up to 63 letters, digits, '-', '_' or '.'" % (key, value))
        prefix = key.split("/", 1)[0] if "/" in key else ""
        restricted = prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io") or prefix == "k8s.io" or prefix.endswith(".k8s.io")
        if restricted and key not in _SELF_LABELS and not key.startswith(_SELF_LABEL_PREFIXES):
            c.fail("node_labels", "the kubelet may not set %s on its own Node (NodeRestriction refuses kubernetes.io/k8s.io labels such as "
                                  "node-role.kubernetes.io/*); label the node with kubectl after it joined, or use another prefix" % key)
    taints = settings.get("node_taints")
    if taints is not None and not isinstance(taints, list):
        c.fail("node_taints", "must be a list of {key, value, effect} or null (kubeadm's default), got %r" % (taints,))


def _check_extras(c, settings):
    for option, owned in OWNED.items():
        extra = settings.get(option) or {}
        if not isinstance(extra, dict):
            c.fail(option, "must be a dict, got %r" % (extra,))
            continue
        for key, owner in owned.items():
            if key in extra:
                c.fail(option, "sets %s, which %s owns: set %s instead" % (key, VARIABLES[owner], VARIABLES[owner]))
    for option in ("apiserver_extra_args", "controller_manager_extra_args", "scheduler_extra_args", "kubelet_extra_args"):
        args = settings.get(option) or {}
        if not isinstance(args, dict):
            c.fail(option, "must be a dict of flag name -> value, got %r" % (args,))
            continue
        for name, value in args.items():
            if not isinstance(name, str) or name.startswith("-") or not re.match(r"^[a-z0-9][-a-z0-9.]*$", name):
                c.fail(option, "%r is not a flag name without dashes, e.g. audit-log-maxage" % (name,))
            if isinstance(value, (dict, list)) or value is None:
                c.fail(option, "%s: flag values are strings, numbers or booleans, got %r" % (name, value))
    if "node-labels" in (settings.get("kubelet_extra_args") or {}):
        c.fail("kubelet_extra_args", "sets node-labels, which %s owns: set %s instead" % (VARIABLES["node_labels"], VARIABLES["node_labels"]))


def _check_secrets(c, settings):
    token = settings.get("bootstrap_token") or ""
    if token and not _TOKEN_RE.match(token):
        c.fail("bootstrap_token", "is not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16} (kubeadm token generate makes one)")
    for value in settings.get("discovery_ca_cert_hashes") or []:
        if not isinstance(value, str) or not _CA_HASH_RE.match(value):
            c.fail("discovery_ca_cert_hashes", "%r is not sha256:<64 hex digits> (kubeadm prints it after init)" % (value,))
    key = settings.get("certificate_key") or ""
    if key and not _CERT_KEY_RE.match(key):
        c.fail("certificate_key", "is not 64 hex digits (kubeadm certs certificate-key makes one)")


def argument_spec():
    """Options of kubeforge.cluster.kubeadm_config (the action plugin validates them; docs in plugins/modules)."""
    return dict(
        kubernetes_version=dict(type="str", required=True),
        api_version=dict(type="str", default="auto", choices=["auto", "v1beta3", "v1beta4"]),
        node_role=dict(type="str", required=True, choices=["init", "control-plane", "worker"]),
        node_name=dict(type="str", default=""),
        advertise_address=dict(type="str", default=""),
        cri_socket=dict(type="str", required=True),
        control_plane_endpoint=dict(type="str", default=""),
        first_control_plane_address=dict(type="str", default=""),
        control_plane_count=dict(type="int", default=1),
        apiserver_proxy=dict(type="bool", default=False),
        apiserver_proxy_endpoint=dict(type="str", default="127.0.0.1:6443"),
        apiserver_bind_port=dict(type="int", default=6443),
        etcd_mode=dict(type="str", default="stacked", choices=["stacked", "external"]),
        etcd_endpoints=dict(type="list", elements="str", default=[]),
        etcd_ca_file=dict(type="str", default=""),
        etcd_cert_file=dict(type="str", default=""),
        etcd_key_file=dict(type="str", default=""),
        image_repository=dict(type="str", default=""),
        pod_subnet=dict(type="str", default="10.244.0.0/16"),
        service_subnet=dict(type="str", default="10.96.0.0/12"),
        dns_domain=dict(type="str", default="cluster.local"),
        node_addresses=dict(type="list", elements="str", default=[]),
        cert_sans=dict(type="list", elements="str", default=[]),
        cgroup_driver=dict(type="str", default="systemd"),
        sandbox_image=dict(type="str", required=True),
        kube_proxy_mode=dict(type="str", default="iptables"),
        ipvs_scheduler=dict(type="str", default=""),
        node_labels=dict(type="dict", default={}),
        node_taints=dict(type="list", elements="dict"),
        kubelet_config=dict(type="dict", default={}),
        kube_proxy_config=dict(type="dict", default={}),
        cluster_config=dict(type="dict", default={}),
        apiserver_extra_args=dict(type="dict", default={}),
        controller_manager_extra_args=dict(type="dict", default={}),
        scheduler_extra_args=dict(type="dict", default={}),
        kubelet_extra_args=dict(type="dict", default={}),
        kubelet_swap=dict(type="bool", default=False),
        bootstrap_token=dict(type="str", default="", no_log=True),
        bootstrap_token_ttl=dict(type="str", default="24h"),
        discovery_ca_cert_hashes=dict(type="list", elements="str", default=[]),
        certificate_key=dict(type="str", default="", no_log=True),
        cluster_name=dict(type="str", default="kubernetes"),
        config_dir=dict(type="str", default="/etc/kubernetes/kubeadm"),
        kubeadm_binary=dict(type="str", default="kubeadm"),
    )
