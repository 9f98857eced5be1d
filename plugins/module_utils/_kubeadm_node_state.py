# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node says about its part in a kubeadm cluster (read-only), for kubeadm part 2's orchestration.

- ``joined``: /etc/kubernetes/kubelet.conf exists (kubeadm init and join write it; kubeadm reset removes it);
- ``admin_conf``: /etc/kubernetes/admin.conf exists (init and control-plane joins write it);
- ``apiserver_live``: with admin.conf, ``kubectl --kubeconfig admin.conf get --raw=/readyz`` answers ``ok`` - the
  cluster is initialised and reachable from this node, not just a file left behind;
- ``control_plane``: the static pod manifest of kube-apiserver exists;
- ``addons``: the manifests (.yaml, .yml, .json) in the add-ons directory, which the role applies.
A marker file alone never decides: a node reset by hand or a stale admin.conf is seen as what it is.
"""

from __future__ import annotations

import os

KUBERNETES_DIR = "etc/kubernetes"
READYZ_TIMEOUT = "5s"


def addon_files(directory):
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names if n.endswith((".yaml", ".yml", ".json")) and os.path.isfile(os.path.join(directory, n))]


def inspect(root, run, kubectl, addons_dir=""):
    """``run(argv) -> (rc, stdout, stderr)``; ``kubectl`` its path or None. Returns the state dict."""
    base = os.path.join(root, KUBERNETES_DIR)
    admin_conf = os.path.join(base, "admin.conf")
    state = {
        "joined": os.path.isfile(os.path.join(base, "kubelet.conf")),
        "admin_conf": os.path.isfile(admin_conf),
        "control_plane": os.path.isfile(os.path.join(base, "manifests", "kube-apiserver.yaml")),
        "ca_cert": os.path.isfile(os.path.join(base, "pki", "ca.crt")),
        "apiserver_live": False,
        "apiserver_error": "",
        "addons": addon_files(os.path.join(root, addons_dir.lstrip("/"))) if addons_dir else [],
    }
    if not state["admin_conf"]:
        state["apiserver_error"] = "no admin.conf"
        return state
    if not kubectl:
        state["apiserver_error"] = "kubectl is not installed"
        return state
    # admin.conf as it is on the node (root's path, not the probe root): kubectl reads it
    rc, out, err = run([kubectl, "--kubeconfig", "/" + KUBERNETES_DIR + "/admin.conf", "get", "--raw=/readyz",
                        "--request-timeout=" + READYZ_TIMEOUT])
    if rc == 0 and out.strip() == "ok":
        state["apiserver_live"] = True
    else:
        state["apiserver_error"] = " ".join((err or out or "rc=%s" % rc).split())[:300]
    return state
