# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side merge time of kubeforge.cluster.containerd_config for 300- and 2,000-line config.toml files.

What one task computes on the controller: read the file (tomllib), check the options, plan the changes
on plain data (one pass), write them into the text (tomlkit, only the sections they land in) and read the
result back. Three files: containerd 1.7's default plus an nvidia runtime (~300 lines), and ~2,000 lines
with 215 vendor runtimes, once in containerd's own order and once appended at the end of the file (tables
split over two places, as hand edits leave them). "whole document" is the same edit with the whole file
parsed by tomlkit, which is what the section cut avoids: tomlkit's parser is slow per line and, before
0.15, quadratic in the number of tables (minutes for the appended file; skipped there). containerd's own
validation (a process on the node) is not included.

    python benchmarks/containerd_config_merge.py [--runs N] [--whole-limit SECONDS]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".build" / "collections"))

import tomlkit  # noqa: E402
import tomllib  # noqa: E402
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config import Request, plan_options  # noqa: E402
from ansible_collections.kubeforge.cluster.plugins.module_utils._containerd_config_toml import _Sections, apply_edits, same  # noqa: E402

BASE = (REPO / "tests" / "integration" / "fixtures" / "containerd" / "v2-default-1.7.toml").read_text()
ANCHOR = '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
NVIDIA = '''      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
        privileged_without_host_devices = false
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
          BinaryName = "/usr/bin/nvidia-container-runtime"
          SystemdCgroup = false
'''
VENDOR = '''      # runtime {i}, added by a vendor tool
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vendor{i}]
        privileged_without_host_devices = false
        runtime_type = "io.containerd.runc.v2"
        pod_annotations = ["example.com/vendor{i}.*"]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vendor{i}.options]
          BinaryName = "/usr/local/bin/vendor{i}-runtime"
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
)


def files():
    vendors = "".join(VENDOR.format(i=i) for i in range(215))
    yield "300 lines", BASE.replace(ANCHOR, NVIDIA + ANCHOR)
    yield "2,000 in order", BASE.replace(ANCHOR, NVIDIA + vendors + ANCHOR)
    yield "2,000 appended", BASE + NVIDIA + vendors


def merge(text, params):
    """The controller's work for one task; returns (new text, changed)."""
    data = tomllib.loads(text)
    plan, _warnings = plan_options(data, Request(params), 2)
    new = apply_edits(text, plan.edits, plan.data)
    return new, not same(plan.data, data)


def timed(function, runs):
    samples = []
    for _run in range(runs):
        start = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--whole-limit", type=float, default=30.0, help="skip the whole-document parse of bigger files once one took longer")
    args = parser.parse_args()
    print("tomlkit %s; median of %d runs per figure (host load from other work inflates timings)" % (tomlkit.__version__, args.runs))
    print("%-15s %6s %12s %12s %18s" % ("file", "lines", "unchanged", "change", "whole document"))
    whole_too_slow = False
    for label, text in files():
        merge(text, PARAMS)  # warm-up
        change_ms, (new_text, changed) = timed(lambda text=text: merge(text, PARAMS), args.runs)
        assert changed
        unchanged_ms, (same_text, changed_again) = timed(lambda new_text=new_text: merge(new_text, PARAMS), args.runs)
        assert not changed_again and same_text == new_text
        if whole_too_slow or (label.endswith("appended") and tuple(int(x) for x in tomlkit.__version__.split(".")[:2]) < (0, 15)):
            whole = "skipped"
        else:
            plan, _warnings = plan_options(tomllib.loads(text), Request(PARAMS), 2)
            start = time.perf_counter()
            whole_text = _Sections(text, split=False).apply_all(plan.edits)
            seconds = time.perf_counter() - start
            assert tomllib.loads(whole_text) == tomllib.loads(new_text)
            whole = "%.0f ms" % (seconds * 1000)
            whole_too_slow = seconds > args.whole_limit
        print("%-15s %6d %9.1f ms %9.1f ms %18s" % (label, text.count("\n"), unchanged_ms, change_ms, whole))


if __name__ == "__main__":
    main()
