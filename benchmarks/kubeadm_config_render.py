# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kubeforge.cluster.kubeadm_config costs the controller per node, and what node_doctor costs a node.

Times ``_kubeadm_config.render`` (settings check, four documents, schema validation) for each supported minor, the
first call (schemas loaded from disk) and warm calls, plus the YAML text the action plugin writes; and the doctor's
checks on this host (``run_checks``, no module start-up). Target: render well under 50 ms warm (a converged node's
task also pays one remote stat), the doctor under 2 s.

    python benchmarks/kubeadm_config_render.py [--rounds 50]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".build" / "collections"))


def _ensure_link():
    link = REPO / ".build" / "collections" / "ansible_collections" / "kubeforge" / "cluster"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


def options(version, pause):
    from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_settings import argument_spec

    values = {name: spec.get("default") for name, spec in argument_spec().items()}
    values.update(kubernetes_version=version, node_role="init", cri_socket="unix:///run/containerd/containerd.sock",
                  sandbox_image=pause, first_control_plane_address="10.1.0.11", node_addresses=["10.1.0.%d" % i for i in range(11, 61)],
                  apiserver_extra_args={"audit-log-maxage": 30}, kubelet_config={"evictionHard": {"memory.available": "200Mi"}, "maxPods": 200},
                  node_labels={"topology.kubernetes.io/zone": "a"})
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    _ensure_link()
    from ansible_collections.kubeforge.cluster.plugins.action.kubeadm_config import render_text
    from ansible_collections.kubeforge.cluster.plugins.module_utils import _kubeadm_schema
    from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_config import render
    from ansible_collections.kubeforge.cluster.plugins.module_utils._kubeadm_versions import MINORS, expected_pause_image

    for minor in sorted(MINORS):
        values = options(minor + ".0", expected_pause_image(minor))
        _kubeadm_schema._CACHE.clear()
        started = time.perf_counter()
        rendered = render(values)
        cold = time.perf_counter() - started
        warm = []
        for _round in range(args.rounds):
            started = time.perf_counter()
            rendered = render(values)
            text = render_text(rendered, rendered["files"]["init.yaml"], minor + ".0")
            warm.append(time.perf_counter() - started)
        print("render+validate+yaml %s (%d docs, %d bytes): first %.1f ms, then median %.2f ms, max %.2f ms (%d rounds)" % (
            minor, len(rendered["files"]["init.yaml"]), len(text), cold * 1000, statistics.median(warm) * 1000, max(warm) * 1000, args.rounds))

    from ansible_collections.kubeforge.cluster.plugins.module_utils._node_doctor import Host, run_checks
    from ansible_collections.kubeforge.cluster.plugins.module_utils._node_doctor_checks import CHECKS

    def run(argv):
        answer = subprocess.run(argv, capture_output=True, text=True, check=False)
        return answer.returncode, answer.stdout, answer.stderr

    params = dict(checks=[], cri_socket="", container_runtime="containerd", sandbox_image=expected_pause_image("1.37"),
                  cgroup_driver="systemd", kube_proxy_mode="iptables", kubelet_swap=False, apiserver_proxy=False,
                  apiserver_proxy_endpoint="127.0.0.1:6443", apiserver_backends=[], apiserver_bind_port=6443, control_plane=True,
                  etcd_mode="stacked", node_name="", timeout=1.0)
    times = []
    for _round in range(5):
        started = time.perf_counter()
        rows = run_checks(Host(run=run, which=shutil.which), params, CHECKS)
        times.append(time.perf_counter() - started)
    print("node_doctor checks on this host (%d checks): median %.0f ms, max %.0f ms (5 rounds)" % (
        len(rows), statistics.median(times) * 1000, max(times) * 1000))


if __name__ == "__main__":
    main()
