# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long kubeforge.cluster.cri_socket's probe + selection takes on a node with four candidates.

Starts real daemons on temporary sockets (Debian's containerd: one with CRI, one with the cri
plugin disabled), a stale socket file and a unix socket that answers HTTP/1.1, then times the
module's core (``detect``) and, as a second figure, the whole module as a process (``python3``
start, AnsibleModule imports, probe, JSON out; what a node pays apart from the connection).
Target: under one second. Pass ``--reuse unix:///a unix:///b ...`` to time existing sockets instead.

    python benchmarks/cri_socket_probe.py [--rounds 20] [--reuse ENDPOINT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for extra in (REPO / ".build" / "collections", REPO / "tools", REPO / "tests" / "integration"):
    sys.path.insert(0, str(extra))


def _ensure_link():
    link = REPO / ".build" / "collections" / "ansible_collections" / "kubeforge" / "cluster"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


def time_detect(candidates, rounds):
    from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs

    timings = []
    selected = None
    endpoints = []
    for _round in range(rounds):
        started = time.perf_counter()
        try:
            endpoints, selected = cs.detect(candidates)
        except cs.CriSocketError as exc:
            endpoints, selected = exc.endpoints, "(failed: %s)" % str(exc)[:80]
        timings.append(time.perf_counter() - started)
    return timings, endpoints, selected


def report(candidates, rounds):
    timings, endpoints, selected = time_detect(candidates, rounds)
    print("candidates: %d" % len(candidates))
    for entry in endpoints:
        print("  %-60s cri=%-5s %s" % (entry["endpoint"], entry["cri"], entry["reason"][:90]))
    print("selected: %s" % selected)
    print("probe + selection over %d rounds: median %.1f ms, max %.1f ms, first %.1f ms (target < 1000 ms)" % (
        rounds, statistics.median(timings) * 1000, max(timings) * 1000, timings[0] * 1000))
    return max(timings)


def time_module_process(candidates, rounds):
    """Run plugins/modules/cri_socket.py as a process with an args file; return its wall times."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO / ".build" / "collections"), os.environ.get("PYTHONPATH")) if p))
    timings = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {"candidates": candidates}}, handle)
    try:
        for _round in range(rounds):
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, str(REPO / "plugins" / "modules" / "cri_socket.py"), handle.name],
                                  capture_output=True, text=True, env=env, check=False)
            timings.append(time.perf_counter() - started)
            result = json.loads(proc.stdout)
    finally:
        os.unlink(handle.name)
    print("whole module process over %d rounds: median %.0f ms, max %.0f ms (cri_socket=%s)" % (
        rounds, statistics.median(timings) * 1000, max(timings) * 1000, result.get("cri_socket", result.get("msg", "")[:60])))
    return max(timings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--reuse", nargs="+", metavar="ENDPOINT", help="time these endpoints instead of starting daemons")
    args = parser.parse_args(argv)
    _ensure_link()
    if args.reuse:
        worst = report(args.reuse, args.rounds)
        time_module_process(args.reuse, 5)
        return 0 if worst < 1.0 else 1

    from containerd_daemon import ContainerdPool

    with tempfile.TemporaryDirectory(prefix="kf-bench-") as workdir, ContainerdPool(Path(workdir)) as pool:
        started = time.perf_counter()
        cri = pool.start("cri", suite="bookworm")
        nocri = pool.start("nocri", suite="bookworm", cri=False)
        stale = pool.stale_socket("stale")
        plain = pool.plain_server("plain").endpoint
        print("daemons up in %.1f s" % (time.perf_counter() - started))
        candidates = [cri.endpoint, nocri.endpoint, stale, plain]
        worst = report(candidates, args.rounds)
        time_module_process(candidates, 5)
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
