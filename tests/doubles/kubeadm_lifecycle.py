# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE of kubeadm's cluster lifecycle (not Kubernetes): init, join, token create, init phase upload-certs,
reset, upgrade apply/node.

What it checks as kubeadm does: the configuration file against the schemas of its minor (the project's validator),
flags that kubeadm refuses next to ``--config``, the criSocket (must be a listening socket), preflight (files of an
earlier init/join), at join the bootstrap token (known to the cluster, not expired) and the CA pin (the SHA-256 of
the cluster CA's public key, computed with openssl), the certificate key of a control-plane join (the one the last
upload-certs used, within its two hours), a Node name already taken. What it writes, as kubeadm does, for the steps
after it: /etc/kubernetes/{pki/ca.crt,pki/ca.key,admin.conf,super-admin.conf,kubelet.conf}, the static pod
manifests, /var/lib/kubelet/config.yaml and kubeadm-flags.env; then it restarts the kubelet (systemctl), whose
double serves the cluster state on the init node (double_cluster.py). Every call is recorded (double_common.log)
with what it found: node name, criSocket, token id, CA pin, whether a certificate key was given.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import stat
import subprocess
import time

import double_cluster as cluster
import double_common as common

COMMANDS = {}
KUBE = "/etc/kubernetes"
KUBELET_DIR = "/var/lib/kubelet"
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
CERTS_TTL = 2 * 3600
# flags kubeadm accepts next to --config (cmd/kubeadm/app/apis/kubeadm/validation isAllowedFlag); "skip-*" too
ALLOWED_WITH_CONFIG = {"config", "ignore-preflight-errors", "dry-run", "kubeconfig", "node-name", "upload-certs", "print-join-command",
                       "rootfs", "v", "log-file", "yes"}


def command(path):
    def register(function):
        COMMANDS[tuple(path.split())] = function
        return function
    return register


def flags(args):
    return [a[2:].split("=", 1)[0] for a in args if a.startswith("--")]


def load_config(args, record, kinds):
    """The documents of --config by kind, after the schema check and the mixed-flags rule; raises ValueError."""
    path = common.option(args, "--config")
    if not path:
        raise ValueError("TEST DOUBLE: only the --config form is implemented")
    mixed = [f for f in flags(args) if f not in ALLOWED_WITH_CONFIG and not f.startswith("skip-")]
    if mixed:
        raise ValueError("can not mix '--config' with arguments %s" % sorted(mixed))
    documents = common.load_yaml_documents(path)
    problems = common.validate(documents)
    if problems:
        raise ValueError("\n".join(problems))
    by_kind = {d.get("kind"): d for d in documents if isinstance(d, dict)}
    missing = [k for k in kinds if k not in by_kind]
    if missing:
        raise ValueError("%s has no %s" % (path, ", ".join(missing)))
    record["config"] = path
    return by_kind


def check_cri(registration, record):
    endpoint = registration.get("criSocket") or ""
    record["cri_socket"] = endpoint
    path = endpoint[len("unix://"):] if endpoint.startswith("unix://") else endpoint
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX)
            probe.settimeout(2)
            probe.connect(path)
            probe.close()
            return
    except OSError as exc:
        raise ValueError("[ERROR CRI]: container runtime is not running: output: validate service connection: validate CRI v1 "
                         "runtime API for endpoint %r: dial unix %s: %s" % (endpoint, path, exc.strerror)) from None
    raise ValueError("[ERROR CRI]: %s is not a socket" % endpoint)


def preflight(paths):
    taken = [p for p in paths if os.path.exists(p)]
    if taken:
        lines = ["[ERROR FileAvailable-%s]: %s already exists" % (p.replace("/", "-"), p) for p in taken]
        raise ValueError("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t" + "\n\t".join(lines) +
                         "\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")


def node_address():
    """The address of the interface the default route leaves by (a UDP connect sends nothing)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]
    except OSError:
        return socket.gethostbyname(socket.gethostname())
    finally:
        probe.close()


def node_name(registration):
    return registration.get("name") or socket.gethostname()


def kubelet_labels(registration):
    labels = {}
    extra = registration.get("kubeletExtraArgs") or []
    pairs = extra.items() if isinstance(extra, dict) else [(a.get("name"), a.get("value")) for a in extra]
    for name, value in pairs:
        if name == "node-labels" and value:
            labels.update(item.split("=", 1) for item in value.split(","))
    return labels


def write_node_files(registration, kubelet_config, server, ca_pem, control_plane, serve_state, stacked_etcd=False):
    cluster.write_file(KUBE + "/pki/ca.crt", ca_pem, 0o644)
    cluster.write_file(KUBE + "/kubelet.conf", cluster.kubeconfig(server, ca_pem, "system:node:" + node_name(registration)))
    if control_plane:
        cluster.write_file(KUBE + "/admin.conf", cluster.kubeconfig(server, ca_pem, "kubernetes-admin"))
        cluster.write_file(KUBE + "/super-admin.conf", cluster.kubeconfig(server, ca_pem, "kubernetes-super-admin"))
        port = control_plane
        annotation = ("    kubeforge.test-double/state-file: %s\n" % cluster.STATE_FILE) if serve_state else ""
        cluster.write_file(KUBE + "/manifests/kube-apiserver.yaml",
                           "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\n  annotations:\n"
                           "    kubeforge.test-double/note: TEST DOUBLE manifest, no image runs\n%s"
                           "spec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --secure-port=%d]\n"
                           % (annotation, port))
        if stacked_etcd:
            cluster.write_file(KUBE + "/manifests/etcd.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\n"
                               "spec:\n  containers:\n  - name: etcd\n    command: [etcd, --data-dir=/var/lib/etcd]\n")
    import yaml

    cluster.write_file(KUBELET_DIR + "/config.yaml", yaml.safe_dump(kubelet_config or {}), 0o644)
    cluster.write_file(KUBELET_DIR + "/kubeadm-flags.env",
                       'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=%s"\n' % registration.get("criSocket"), 0o644)


def restart_kubelet():
    subprocess.run(["systemctl", "daemon-reload"], check=False, capture_output=True)
    subprocess.run(["systemctl", "restart", "kubelet"], check=False, capture_output=True)


def certificate_key_line(key):
    return "[upload-certs] Using certificate key:\n%s" % key


@command("init")
def init(args, record):
    try:
        docs = load_config(args, record, ["InitConfiguration", "ClusterConfiguration"])
        init_cfg, cluster_cfg = docs["InitConfiguration"], docs["ClusterConfiguration"]
        registration = init_cfg.get("nodeRegistration") or {}
        check_cri(registration, record)
        preflight([KUBE + "/manifests/kube-apiserver.yaml", KUBE + "/admin.conf", KUBE + "/kubelet.conf"])
        external = (cluster_cfg.get("etcd") or {}).get("external")
        for key in ("caFile", "certFile", "keyFile"):
            if external and not os.path.isfile(external.get(key) or ""):
                raise ValueError("[ERROR ExternalEtcdClientCertificates]: %s doesn't exist" % external.get(key))
        name = node_name(registration)
        endpoint = init_cfg.get("localAPIEndpoint") or {}
        address = endpoint.get("advertiseAddress") or node_address()
        port = int(endpoint.get("bindPort") or 6443)
        server = "https://" + (cluster_cfg.get("controlPlaneEndpoint") or "%s:%d" % (address, port))
        cluster.make_ca(KUBE + "/pki")
        with open(KUBE + "/pki/ca.crt", encoding="utf-8") as handle:
            ca_pem = handle.read()
        tokens = {}
        for entry in init_cfg.get("bootstrapTokens") or [{"token": cluster.new_token()}]:
            token_id, secret = entry["token"].split(".")
            tokens[token_id] = {"secret": secret, "expires": time.time() + cluster.duration(entry.get("ttl") or "24h"), "description": "init"}
        key = init_cfg.get("certificateKey") or secrets.token_hex(32)
        kubelet = docs.get("KubeletConfiguration") or {}
        taints = registration["taints"] if "taints" in registration else [CP_TAINT]
        labels = dict(kubelet_labels(registration))
        labels.update({"node-role.kubernetes.io/control-plane": "", "node.kubernetes.io/exclude-from-external-load-balancers": ""})
        state = {"version": 1, "ca_pem": ca_pem, "tokens": tokens, "cluster": cluster_cfg, "kubelet_config": kubelet,
                 "kubernetes_version": cluster_cfg.get("kubernetesVersion"), "objects": {}, "csrs": {},
                 "nodes": {name: cluster.node_object(name, address, labels, taints)},
                 "etcd_members": [] if external else [name],
                 "upload_certs": {"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "expires": time.time() + CERTS_TTL}
                 if "--upload-certs" in args else {}}
        if kubelet.get("serverTLSBootstrap"):
            csr_name, csr = cluster.serving_csr(name, [address])
            state["csrs"][csr_name] = csr
        cluster.write_json(cluster.STATE_FILE, state)
        write_node_files(registration, kubelet, server, ca_pem, port, serve_state=True, stacked_etcd=not external)
        restart_kubelet()
        cluster.wait_ready("http://127.0.0.1:%d" % port, 60)
    except (ValueError, OSError, cluster.ApiError) as exc:
        return common.fail(record, "%s\nTo see the stack trace of this error execute with --v=5 or higher" % exc)
    record.update(node=name, server=server, upload_certs="--upload-certs" in args, ca_pin=cluster.ca_pin(ca_pem))
    token = "%s.%s" % next(iter((i, t["secret"]) for i, t in tokens.items()))
    print("[init] Using Kubernetes version: %s\n[init] TEST DOUBLE of kubeadm (kubeforge.cluster tests; not Kubernetes)" % state["kubernetes_version"])
    if "--upload-certs" in args:
        print(certificate_key_line(key))
    print("\nYour Kubernetes control-plane has initialized successfully!\n\nYou can now join any number of control-plane nodes "
          "running the following command on each as root:\n\n  kubeadm join %s --token %s \\\n\t--discovery-token-ca-cert-hash %s \\\n"
          "\t--control-plane --certificate-key %s\n" % (server[8:], token, record["ca_pin"], key))
    return 0


@command("join")
def join(args, record):
    try:
        docs = load_config(args, record, ["JoinConfiguration"])
        join_cfg = docs["JoinConfiguration"]
        registration = join_cfg.get("nodeRegistration") or {}
        control = join_cfg.get("controlPlane")
        check_cri(registration, record)
        preflight([KUBE + "/kubelet.conf", KUBE + "/pki/ca.crt"] + ([KUBE + "/manifests/kube-apiserver.yaml"] if control is not None else []))
        discovery = (join_cfg.get("discovery") or {}).get("bootstrapToken") or {}
        endpoint, token = discovery.get("apiServerEndpoint") or "", discovery.get("token") or ""
        pins = discovery.get("caCertHashes") or []
        name = node_name(registration)
        record.update(node=name, endpoint=endpoint, control_plane=control is not None, token_id=token.split(".")[0], ca_pins=pins,
                      certificate_key_given=bool((control or {}).get("certificateKey")))
        server = "https://" + endpoint
        deadline = time.time() + 30
        while True:
            try:
                state = cluster.get(server)
                break
            except cluster.ApiError as exc:
                if time.time() > deadline:
                    raise ValueError("error execution phase preflight: couldn't validate the identity of the API Server: %s" % exc) from None
                time.sleep(1)
        token_id, _dot, secret = token.partition(".")
        known = state["tokens"].get(token_id)
        if not known or known["secret"] != secret or (known["expires"] and known["expires"] < time.time()):
            raise ValueError('error execution phase preflight: couldn\'t validate the identity of the API Server: could not find a JWS '
                             'signature in the cluster-info ConfigMap for token ID "%s"' % token_id)
        actual = cluster.ca_pin(state["ca_pem"])
        if actual not in pins:
            raise ValueError('error execution phase preflight: couldn\'t validate the identity of the API Server: cluster CA found in '
                             'cluster-info ConfigMap is invalid: none of the public keys "%s" are pinned' % actual)
        if name in state["nodes"]:
            raise ValueError("error execution phase kubelet-start: a Node with name %r and status \"Ready\" already exists in the "
                             "cluster. You must delete the existing Node or change the name of this new joining Node" % name)
        port, address = 0, node_address()
        if control is not None:
            if not state["cluster"].get("controlPlaneEndpoint"):
                raise ValueError("error execution phase preflight: unable to add a new control plane instance to a cluster that "
                                 "doesn't have a stable controlPlaneEndpoint address")
            key = control.get("certificateKey") or ""
            uploaded = state.get("upload_certs") or {}
            if hashlib.sha256(key.encode()).hexdigest() != uploaded.get("key_sha256") or uploaded.get("expires", 0) < time.time():
                raise ValueError("error execution phase control-plane-prepare/download-certs: error downloading certs: error "
                                 "downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. "
                                 "This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a "
                                 "control plane to generate a new one")
            local = control.get("localAPIEndpoint") or {}
            port, address = int(local.get("bindPort") or 6443), local.get("advertiseAddress") or address
        labels = kubelet_labels(registration)
        taints = registration.get("taints") or []
        if control is not None:
            labels.update({"node-role.kubernetes.io/control-plane": "", "node.kubernetes.io/exclude-from-external-load-balancers": ""})
            taints = registration["taints"] if "taints" in registration else [CP_TAINT]
        csr = cluster.serving_csr(name, [address]) if state["kubelet_config"].get("serverTLSBootstrap") else None

        def register(current):
            if name in current["nodes"]:
                raise cluster.ApiError("a Node with name %r already exists in the cluster" % name)
            current["nodes"][name] = cluster.node_object(name, address, labels, taints)
            if csr:
                current["csrs"][csr[0]] = csr[1]
            if control is not None and not (current["cluster"].get("etcd") or {}).get("external"):
                current["etcd_members"].append(name)
        cluster.update(server, register)
        stacked = control is not None and not (state["cluster"].get("etcd") or {}).get("external")
        write_node_files(registration, state["kubelet_config"], server, state["ca_pem"], port, serve_state=False, stacked_etcd=stacked)
        restart_kubelet()
    except (ValueError, OSError, cluster.ApiError) as exc:
        return common.fail(record, "%s\nTo see the stack trace of this error execute with --v=5 or higher" % exc)
    record["ca_pin_of_cluster"] = actual
    print("[preflight] Running pre-flight checks\n[join] TEST DOUBLE of kubeadm (kubeforge.cluster tests; not Kubernetes)\n\n"
          "This node has joined the cluster%s." % (" and a new control plane instance was created" if control is not None else ""))
    return 0


def admin_server(args):
    return cluster.server_of_kubeconfig(common.option(args, "--kubeconfig") or KUBE + "/admin.conf")


@command("token create")
def token_create(args, record):
    try:
        ttl = cluster.duration(common.option(args, "--ttl") or "24h")
        token = cluster.new_token()
        description = common.option(args, "--description") or ""
        token_id, secret = token.split(".")

        def add(state):
            state["tokens"][token_id] = {"secret": secret, "expires": time.time() + ttl if ttl else 0, "description": description}
        cluster.update(admin_server(args), add)
    except (ValueError, OSError, cluster.ApiError) as exc:
        return common.fail(record, "failed to create or update bootstrap token with name bootstrap-token: %s" % exc)
    record.update(token_id=token_id, ttl=ttl, description=description)
    print(token)
    return 0


@command("init phase upload-certs")
def upload_certs(args, record):
    if "--upload-certs" not in args:
        return common.fail(record, "[upload-certs] Skipping phase. Please see --upload-certs", rc=0)
    key = common.option(args, "--certificate-key") or secrets.token_hex(32)
    try:
        if common.option(args, "--config") and common.option(args, "--certificate-key"):
            raise ValueError("can not mix '--config' with arguments [certificate-key]")

        def store(state):
            state["upload_certs"] = {"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "expires": time.time() + CERTS_TTL}
        cluster.update(admin_server(args), store)
    except (ValueError, OSError, cluster.ApiError) as exc:
        return common.fail(record, "error execution phase upload-certs: %s" % exc)
    record["key_sha256"] = hashlib.sha256(key.encode()).hexdigest()
    print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
    print(certificate_key_line(key))
    return 0


@command("reset")
def reset(args, record):
    if not ("-f" in args or "--force" in args):
        return common.fail(record, "TEST DOUBLE: reset without --force would ask for confirmation")
    record["cri_socket"] = common.option(args, "--cri-socket")
    server = None
    for conf in (KUBE + "/admin.conf", KUBE + "/kubelet.conf"):
        if os.path.isfile(conf):
            server = cluster.server_of_kubeconfig(conf)
            break
    name = socket.gethostname()
    if server and os.path.isfile(KUBE + "/manifests/kube-apiserver.yaml"):
        def remove_member(state):
            removed = name in state["etcd_members"]
            state["etcd_members"] = [m for m in state["etcd_members"] if m != name]
            return removed
        try:
            record["removed_etcd_member"] = cluster.update(server, remove_member)
        except cluster.ApiError as exc:
            print("[reset] Failed to remove etcd member: %s" % exc)
    subprocess.run(["systemctl", "stop", "kubelet"], check=False, capture_output=True)
    removed = []
    # like kubeadm: the etcd data directory only of a stacked member (never an external etcd's on the same host)
    stacked = ["/var/lib/etcd"] if os.path.isfile(KUBE + "/manifests/etcd.yaml") else []
    for path in [KUBE + "/manifests", KUBE + "/pki", KUBELET_DIR, cluster.STATE_FILE] + stacked + [
            KUBE + "/" + f for f in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                                     "controller-manager.conf", "scheduler.conf")]:
        if os.path.isdir(path):
            shutil.rmtree(path)
            removed.append(path)
        elif os.path.exists(path):
            os.remove(path)
            removed.append(path)
    record["removed"] = removed
    print("[reset] TEST DOUBLE of kubeadm: removed %s\nThe reset process does not clean CNI configuration." % ", ".join(removed))
    return 0


@command("upgrade apply")
def upgrade_apply(args, record):
    target = next((a for a in args if a.startswith("v")), None)
    if not target or not ("--yes" in args or "-y" in args):
        return common.fail(record, "TEST DOUBLE: upgrade apply needs the version (vX.Y.Z) and --yes")
    if target.lstrip("v") != common.BUILD["version"]:
        return common.fail(record, "[upgrade/version] FATAL: the --version argument is invalid due to these errors: specified "
                                   "version to upgrade to \"%s\" is not the kubeadm version \"%s\"" % (target, "v" + common.BUILD["version"]))
    try:
        def bump(state):
            state["kubernetes_version"] = target
            state["cluster"]["kubernetesVersion"] = target
        cluster.update(admin_server(args), bump)
    except (ValueError, OSError, cluster.ApiError) as exc:
        return common.fail(record, "[upgrade/init config] FATAL: %s" % exc)
    record["target"] = target
    print('[upgrade/successful] SUCCESS! Your cluster was upgraded to "%s". Enjoy!' % target)
    return 0


@command("upgrade node")
def upgrade_node(args, record):
    if not os.path.isfile(KUBE + "/kubelet.conf"):
        return common.fail(record, "error execution phase preflight: this node is not part of a cluster")
    print("[upgrade] The configuration for this node was successfully updated!")
    return 0
