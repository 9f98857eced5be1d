# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TEST DOUBLE of the kubelet (not Kubernetes). ``--version`` prints the release it stands in for. Started any
other way (systemd, with the flags of kubeadm's drop-in) it exits 1 like a kubelet without the kubeconfig kubeadm
init/join writes; with /etc/kubernetes/kubelet.conf it keeps running, and where the kube-apiserver manifest that the
kubeadm double wrote at init names the state file, it serves the cluster state on the API server's bind port
(double_cluster.py) - the "static pod" of this double. No pod or container ever runs. Calls are recorded."""

from __future__ import annotations

import os
import signal
import sys
import time

import double_cluster as cluster
import double_common as common

KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
COMMANDS = {}


def run(argv):
    record = {"time": time.time(), "component": "kubelet", "argv": ["kubelet"] + argv, "test_double": True}
    if not os.path.isfile(KUBELET_CONF):
        record["rc"] = common.fail(record, 'failed to run Kubelet: unable to load bootstrap kubeconfig: stat %s: no such file or directory' % KUBELET_CONF)
        common.log("kubelet", record)
        return 1
    serving = None
    if os.path.isfile(APISERVER_MANIFEST):
        import yaml

        with open(APISERVER_MANIFEST, encoding="utf-8") as handle:
            manifest = yaml.safe_load(handle)
        state_file = ((manifest.get("metadata") or {}).get("annotations") or {}).get("kubeforge.test-double/state-file")
        flags = manifest["spec"]["containers"][0]["command"]
        port = int(next(f.split("=", 1)[1] for f in flags if f.startswith("--secure-port=")))
        if state_file and os.path.isfile(state_file):
            serving = (port, state_file)
    record.update(rc=0, serving_api_on=serving[0] if serving else None)
    common.log("kubelet", record)
    if serving:
        cluster.serve(*serving)
    else:
        signal.pause()
    return 0


def main(argv):
    common.load_build()
    if argv[:1] == ["--version"]:
        print("Kubernetes v" + common.BUILD["version"])
        common.log("kubelet", {"argv": ["kubelet"] + argv, "rc": 0, "test_double": True})
        return 0
    return run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
