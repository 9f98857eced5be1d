# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""In-process merge time of kubeforge.cluster.containerd_config for a ~300-line config.toml.

Measures what runs on the controller for one task: parse (tomlkit), apply every option, render,
read back, compare by data. containerd's own validation (a process on the node) is not included.
Target: well under 50 ms per task.

    python benchmarks/containerd_config_merge.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".build" / "collections"))

from ansible_collections.kubeforge.cluster.plugins.module_utils import _containerd_config as cc  # noqa: E402

NVIDIA = '''
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
        privileged_without_host_devices = false
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
          BinaryName = "/usr/bin/nvidia-container-runtime"
          SystemdCgroup = false
'''

PARAMS = dict(
    sandbox_image="registry.example.internal:5000/pause:3.10",
    systemd_cgroup=True,
    registry_config_path="/etc/containerd/certs.d",
    runtimes={"kata": {"runtime_type": "io.containerd.kata.v2", "pod_annotations": ["io.katacontainers.*"],
                       "privileged_without_host_devices": True}},
    default_runtime="runc",
    merge={"plugins": {"io.containerd.grpc.v1.cri": {"max_container_log_line_size": 32768}}},
    validate=False,
)


class InMemoryNode(cc.NodeOps):
    def __init__(self, text):
        self.text = text

    def read(self, path):
        return True, self.text

    def run(self, argv):
        return 127, "", "not used"

    def write_temp(self, text):
        raise AssertionError("check mode without validation writes nothing")

    def install(self, temp_path, text, path, existed, backup):
        raise AssertionError("check mode writes nothing")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    base = (REPO / "tests" / "integration" / "fixtures" / "containerd" / "v2-default-1.7.toml").read_text()
    anchor = '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
    assert anchor in base
    # as nvidia-ctk writes it (containerd's own key order: nvidia before runc) ...
    in_order = base.replace(anchor, NVIDIA.lstrip("\n") + anchor)
    # ... and hand-appended at the end of the file (a table split over two places)
    appended = base + NVIDIA
    params = dict(PARAMS, path="/etc/containerd/config.toml")
    for label, text in (("generated order", in_order), ("nvidia appended", appended)):
        measure(label, text, params, args.runs)
    print("(the unchanged case needs no comment-preserving parse; a change parses only the sections it touches)")


def measure(label, text, params, runs):
    node = InMemoryNode(text)
    cc.run(params, node, check_mode=True)  # warm-up (imports, caches)
    wall, cpu = [], []
    for _run in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = cc.run(params, node, check_mode=True)
        wall.append((time.perf_counter() - start) * 1000.0)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
    assert result["changed"]
    print("%-16s %d lines: change    median %6.2f ms (cpu %6.2f ms), p95 %6.2f ms  [target < 50 ms]"
          % (label, len(text.splitlines()), statistics.median(wall), statistics.median(cpu), sorted(wall)[int(runs * 0.95) - 1]))
    node.text = result["diff"]["after"]
    wall = []
    for _run in range(runs):
        start = time.perf_counter()
        again = cc.run(params, node, check_mode=True)
        wall.append((time.perf_counter() - start) * 1000.0)
    assert not again["changed"]
    print("%-16s %d lines: unchanged median %6.2f ms, p95 %6.2f ms"
          % (label, len(text.splitlines()), statistics.median(wall), sorted(wall)[int(runs * 0.95) - 1]))
    return result


if __name__ == "__main__":
    main()
