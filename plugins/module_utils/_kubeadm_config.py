# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render kubeadm's configuration documents from checked settings, and validate them against the schemas.

``render(options)`` = ``_kubeadm_settings.check`` + the documents of this node's file + schema validation.
Each value put into a document remembers the option (and so the role variable) it came from, so that a
schema error names the variable to fix: ``KubeletConfiguration.evictionHardd: unknown field (did you mean
evictionHard?) - from kubeadm_kubelet_config``.

Files: the first control-plane node gets ``init.yaml`` (InitConfiguration, ClusterConfiguration,
KubeletConfiguration, KubeProxyConfiguration); every other node ``join.yaml`` (JoinConfiguration, with a
``controlPlane`` section on control-plane nodes) once a bootstrap token and the CA certificate hashes
are known (kubeadm part 2 provides them); until then ``pending`` says what is missing.
"""

from __future__ import annotations

import copy

from ansible_collections.kubeforge.cluster.plugins.module_utils import _kubeadm_schema as schema
from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_settings import VARIABLES, SettingsError, check

KUBELET_API = "kubelet.config.k8s.io/v1beta1"
KUBE_PROXY_API = "kubeproxy.config.k8s.io/v1alpha1"
ETCD_DATA_DIR = "/var/lib/etcd"
INIT_FILE = "init.yaml"
JOIN_FILE = "join.yaml"


class Document:
    """One configuration document and where each of its values came from (path -> option)."""

    def __init__(self, api_version, kind):
        self.kind = kind
        self.data = {"apiVersion": api_version, "kind": kind}
        self.sources = {}

    def put(self, path, value, option):
        """Set ``a.b.c`` (dicts created on the way) and remember ``option`` for it."""
        keys = path.split(".")
        node = self.data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        self.sources["%s.%s" % (self.kind, path)] = option

    def merge(self, extra, option, prefix=""):
        """Deep-merge a user dict (extra settings); its leaves are attributed to ``option``."""
        node = self.data
        for key in prefix.split(".") if prefix else []:
            node = node.setdefault(key, {})
        _deep_merge(node, copy.deepcopy(extra))
        base = "%s%s" % (self.kind, "." + prefix if prefix else "")
        self.sources[base] = option
        for leaf in _leaves(extra):
            self.sources["%s.%s" % (base, leaf)] = option

    def source_of(self, path):
        """The option whose value is at ``path`` (longest recorded prefix), or None."""
        candidates = [p for p in self.sources if path == p or path.startswith(p + ".") or path.startswith(p + "[")]
        return self.sources[max(candidates, key=len)] if candidates else None


def _leaves(value, prefix=""):
    """Dotted paths of the leaves of a nested dict."""
    if not isinstance(value, dict) or not value:
        return [prefix] if prefix else []
    paths = []
    for key, item in value.items():
        paths.extend(_leaves(item, "%s.%s" % (prefix, key) if prefix else str(key)))
    return paths


def _deep_merge(target, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def _flag_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _args(settings, mapping):
    """Extra flags as kubeadm's API wants them: a map before v1beta4, a list of name/value pairs from v1beta4."""
    pairs = [(name, _flag_value(value)) for name, value in sorted(mapping.items())]
    if settings["kubeadm_api"] == "v1beta3":
        return dict(pairs)
    return [{"name": name, "value": value} for name, value in pairs]


def _node_registration(settings, doc):
    if settings.get("node_name"):
        doc.put("nodeRegistration.name", settings["node_name"], "node_name")
    doc.put("nodeRegistration.criSocket", settings["cri_socket"], "cri_socket")
    if settings.get("node_taints") is not None:
        doc.put("nodeRegistration.taints", copy.deepcopy(settings["node_taints"]), "node_taints")
    kubelet_args = dict(settings.get("kubelet_extra_args") or {})
    labels = settings.get("node_labels") or {}
    if labels:
        kubelet_args["node-labels"] = ",".join("%s=%s" % item for item in sorted(labels.items()))
    if kubelet_args:
        doc.put("nodeRegistration.kubeletExtraArgs", _args(settings, kubelet_args), "kubelet_extra_args")


def _local_endpoint(settings, doc, prefix):
    if settings.get("advertise_address"):
        doc.put(prefix + ".advertiseAddress", settings["advertise_address"], "advertise_address")
    doc.put(prefix + ".bindPort", settings["apiserver_bind_port"], "apiserver_bind_port")


def init_configuration(settings):
    doc = Document("kubeadm.k8s.io/" + settings["kubeadm_api"], "InitConfiguration")
    if settings.get("bootstrap_token"):
        doc.put("bootstrapTokens", [{"token": settings["bootstrap_token"], "ttl": settings.get("bootstrap_token_ttl") or "24h",
                                     "usages": ["signing", "authentication"], "groups": ["system:bootstrappers:kubeadm:default-node-token"]}],
                "bootstrap_token")
    _node_registration(settings, doc)
    _local_endpoint(settings, doc, "localAPIEndpoint")
    if settings.get("certificate_key"):
        doc.put("certificateKey", settings["certificate_key"], "certificate_key")
    return doc


def cluster_configuration(settings):
    doc = Document("kubeadm.k8s.io/" + settings["kubeadm_api"], "ClusterConfiguration")
    doc.put("kubernetesVersion", "v" + settings["version"], "kubernetes_version")
    doc.put("clusterName", settings.get("cluster_name") or "kubernetes", "cluster_name")
    doc.put("controlPlaneEndpoint", settings["endpoint"], "control_plane_endpoint" if not settings.get("apiserver_proxy") else "apiserver_proxy")
    if settings.get("image_repository"):
        doc.put("imageRepository", settings["image_repository"], "image_repository")
    if settings.get("pod_subnet"):
        doc.put("networking.podSubnet", settings["pod_subnet"], "pod_subnet")
    doc.put("networking.serviceSubnet", settings["service_subnet"], "service_subnet")
    doc.put("networking.dnsDomain", settings["dns_domain"], "dns_domain")
    if settings.get("etcd_mode") == "external":
        doc.put("etcd.external", {"endpoints": list(settings["etcd_endpoints"]), "caFile": settings["etcd_ca_file"],
                                  "certFile": settings["etcd_cert_file"], "keyFile": settings["etcd_key_file"]}, "etcd_endpoints")
    else:
        doc.put("etcd.local.dataDir", ETCD_DATA_DIR, "etcd_mode")
    if settings.get("cert_sans"):
        doc.put("apiServer.certSANs", list(settings["cert_sans"]), "cert_sans")
    for component, option in (("apiServer", "apiserver_extra_args"), ("controllerManager", "controller_manager_extra_args"),
                              ("scheduler", "scheduler_extra_args")):
        if settings.get(option):
            doc.put(component + ".extraArgs", _args(settings, settings[option]), option)
    if settings.get("cluster_config"):
        doc.merge(settings["cluster_config"], "cluster_config")
    return doc


def kubelet_configuration(settings):
    doc = Document(KUBELET_API, "KubeletConfiguration")
    doc.put("cgroupDriver", settings["cgroup_driver"], "cgroup_driver")
    if settings.get("kubelet_swap"):
        doc.put("failSwapOn", False, "kubelet_swap")
        doc.put("memorySwap.swapBehavior", "LimitedSwap", "kubelet_swap")
    else:
        doc.put("failSwapOn", True, "kubelet_swap")
    if settings.get("kubelet_config"):
        doc.merge(settings["kubelet_config"], "kubelet_config")
    return doc


def kube_proxy_configuration(settings):
    doc = Document(KUBE_PROXY_API, "KubeProxyConfiguration")
    doc.put("mode", settings["kube_proxy_mode"], "kube_proxy_mode")
    if settings.get("pod_subnet"):
        doc.put("clusterCIDR", settings["pod_subnet"], "pod_subnet")
    if settings["kube_proxy_mode"] == "ipvs" and settings.get("ipvs_scheduler"):
        doc.put("ipvs.scheduler", settings["ipvs_scheduler"], "ipvs_scheduler")
    if settings.get("kube_proxy_config"):
        doc.merge(settings["kube_proxy_config"], "kube_proxy_config")
    return doc


def join_configuration(settings):
    doc = Document("kubeadm.k8s.io/" + settings["kubeadm_api"], "JoinConfiguration")
    _node_registration(settings, doc)
    doc.put("discovery.bootstrapToken", {"apiServerEndpoint": settings["endpoint"], "token": settings["bootstrap_token"],
                                         "caCertHashes": list(settings["discovery_ca_cert_hashes"])}, "bootstrap_token")
    if settings.get("node_role") == "control-plane":
        _local_endpoint(settings, doc, "controlPlane.localAPIEndpoint")
        if settings.get("certificate_key"):
            doc.put("controlPlane.certificateKey", settings["certificate_key"], "certificate_key")
    return doc


def documents(settings):
    """``({file name: [Document]}, [pending reasons])`` for this node's role."""
    if settings.get("node_role") == "init":
        return {INIT_FILE: [init_configuration(settings), cluster_configuration(settings), kubelet_configuration(settings),
                            kube_proxy_configuration(settings)]}, []
    missing = [VARIABLES[o] for o in ("bootstrap_token", "discovery_ca_cert_hashes") if not settings.get(o)]
    if missing:
        return {}, ["%s waits for %s (set after kubeadm init, by kubeadm part 2 or by hand)" % (JOIN_FILE, " and ".join(missing))]
    return {JOIN_FILE: [join_configuration(settings)]}, []


def render(options, schema_dir=schema.SCHEMA_DIR):
    """Check, build and validate. Returns a dict with ``files`` ({name: [document dicts]}), ``pending``, ``warnings``,
    ``kernel_modules``, ``minor``, ``kubeadm_api``; raises :class:`SettingsError` naming the variables."""
    settings = check(options)
    files, pending = documents(settings)
    problems = []
    for docs in files.values():
        for doc in docs:
            for problem in schema.validate_document(doc.data, settings["minor"], schema_dir):
                option = doc.source_of(problem.path)
                problems.append((VARIABLES.get(option, option) if option else "rendered configuration", str(problem)))
    if problems:
        raise SettingsError(problems)
    return {
        "files": {name: [doc.data for doc in docs] for name, docs in files.items()},
        "pending": pending,
        "warnings": settings["warnings"],
        "kernel_modules": settings["kernel_modules"],
        "minor": settings["minor"],
        "kubeadm_api": "kubeadm.k8s.io/" + settings["kubeadm_api"],
        "endpoint": settings["endpoint"],
    }
