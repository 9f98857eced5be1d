# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""In-process timings of the collection's Python module logic on realistic input.

One ``ModuleTiming`` per module in ``TIMINGS``: ``setup(stack)`` prepares the input (files, daemons;
register their cleanup on the ``ExitStack``) and returns the call to time. Adding a module is adding
one entry. The figures are what one task costs in Python on the node (or on the controller for an
action plugin), without the connection, the interpreter start and AnsibleModule's imports.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
for extra in (REPO / ".build" / "collections", REPO / "benchmarks", REPO / "tests" / "integration"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


@dataclass
class ModuleTiming:
    module: str
    case: str
    setup: Callable[[ExitStack], Callable[[], object]]
    rounds: int = 50


def _containerd_merge(changed: bool) -> Callable[[ExitStack], Callable[[], object]]:
    def setup(stack):
        import containerd_config_merge as merge  # benchmarks/containerd_config_merge.py: its input and merge step

        text = merge.BASE.replace(merge.ANCHOR, merge.NVIDIA + merge.ANCHOR)
        if not changed:  # the file as the module leaves it: what every no-op converge sees
            text = merge.merge(text, merge.PARAMS)[0]
        return lambda: merge.merge(text, merge.PARAMS)
    return setup


def _cri_probe(stack):
    """A node with four candidates: a real containerd with CRI, one without, a stale socket file, and a
    unix socket that answers HTTP/1.1 (real daemons from tests/integration/containerd_daemon.py)."""
    from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs
    from containerd_daemon import ContainerdPool

    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kfbench-cri-")))
    pool = stack.enter_context(ContainerdPool(workdir))
    candidates = [pool.start("cri").endpoint, pool.start("nocri", cri=False).endpoint,
                  pool.stale_socket("stale"), pool.plain_server("plain").endpoint]

    def call():
        try:
            return cs.detect(candidates)
        except cs.CriSocketError as exc:  # several answers: the module fails with the list, the probe is the same
            return exc.endpoints
    return call


def _packages_present(stack):
    """The no-op of `packages`: eight packages that are all installed, on this (Debian) host's real dpkg."""
    import os
    import shutil
    import subprocess

    from ansible_collections.kubeforge.cluster.plugins.module_utils import _packages as pk

    bins = {name: shutil.which(name) for name in ("dpkg-query", "dpkg-deb", "apt-get", "apt-mark")}
    if not all(bins.values()):
        raise RuntimeError("needs a Debian host (dpkg-query, apt-get)")

    def run(argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, LANGUAGE="C", LC_ALL="C"))
        return proc.returncode, proc.stdout, proc.stderr

    manager = pk.Apt(run, bins)
    wanted = ["bash", "coreutils", "dpkg", "iproute2", "iptables", "openssh-client", "procps", "util-linux"]
    requests = [pk.Request(name) for name in sorted(manager.query(set(wanted)))]
    return lambda: pk.ensure(manager, requests, check_mode=True)


TIMINGS = [
    ModuleTiming("containerd_config", "merge into a 300-line config.toml, no change (every no-op)", _containerd_merge(False)),
    ModuleTiming("containerd_config", "merge into a 300-line config.toml, with a change", _containerd_merge(True)),
    ModuleTiming("cri_socket", "probe 4 sockets (CRI, no CRI, stale, HTTP/1.1) and select", _cri_probe, rounds=20),
    ModuleTiming("packages", "8 installed packages, nothing to do (dpkg-query on this host)", _packages_present),
]


def run_all(only: set[str] | None = None, log=print) -> list[dict]:
    results = []
    for timing in TIMINGS:
        if only and timing.module not in only:
            continue
        entry = {"module": timing.module, "case": timing.case, "rounds": timing.rounds}
        try:
            with ExitStack() as stack:
                call = timing.setup(stack)
                call()  # warm-up: imports, caches
                wall, cpu = [], []
                for _round in range(timing.rounds):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    call()
                    wall.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - started_cpu) * 1000)
        except Exception as exc:  # a module whose input cannot be made here is reported, not fatal
            entry["error"] = "%s: %s" % (type(exc).__name__, exc)
            log("module %-18s %-62s FAILED: %s" % (timing.module, timing.case, entry["error"]))
            results.append(entry)
            continue
        wall.sort()
        entry.update(median_ms=round(statistics.median(wall), 3), p95_ms=round(wall[int(len(wall) * 0.95) - 1], 3),
                     cpu_median_ms=round(statistics.median(cpu), 3))
        log("module %-18s %-62s median %7.2f ms  p95 %7.2f ms  cpu %7.2f ms"
            % (timing.module, timing.case, entry["median_ms"], entry["p95_ms"], entry["cpu_median_ms"]))
        results.append(entry)
    return results
