# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long kubeforge.cluster.cri_socket's probe + selection takes on a node with four candidates.

Starts real daemons on temporary sockets (Debian's containerd: one with CRI, one with the cri
plugin disabled), a stale socket file and a unix socket that answers HTTP/1.1, then times the
module's core (``detect``) and, as a second figure, the whole module as a process (``python3``
start, AnsibleModule imports, probe, JSON out; what a node pays apart from the connection).
Target: under one second. Pass ``--reuse unix:///a unix:///b ...`` to time existing sockets instead.

Then the bounds (``--hostile-timeout``, default 2 s, the module's default): each hostile listener of
tests/hostile_peers.py (header floods, endless DATA, PING floods, slow drip, garbage, ...) and a listener
whose backlog is full, probed alone, with its wall time and peak memory (tracemalloc); and 50 silent
listeners probed together as one module run would. Target: every probe within the timeout plus 0.5 s.

    python benchmarks/cri_socket_probe.py [--rounds 20] [--reuse ENDPOINT ...] [--hostile-timeout 2] [--no-daemons]
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
for extra in (REPO / ".build" / "collections", REPO / "tools", REPO / "tests" / "integration", REPO / "tests"):
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


def hostile_figures(timeout):
    """Probe each hostile listener alone; print wall time and peak memory; return the worst wall time."""
    import socket
    import tracemalloc

    from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs
    from grpc_peers import ScriptedPeer
    from hostile_peers import HOSTILE

    worst = (0.0, "")
    worst_memory = (0, "")
    with tempfile.TemporaryDirectory(prefix="kf-bench-hostile-") as workdir:
        cases = [(name, handler, {}) for name, handler, _said in HOSTILE] + [("full backlog", None, {"backlog": 0, "accept": False})]
        print("hostile listeners, timeout %.1f s each:" % timeout)
        for index, (name, handler, options) in enumerate(cases):
            peer = ScriptedPeer(Path(workdir) / ("h%d.sock" % index), handler, http2=False, **options)
            waiting = []
            if not options.get("accept", True):
                for _attempt in range(4):
                    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    client.setblocking(False)
                    try:
                        client.connect(peer.path)
                    except OSError:
                        client.close()
                        break
                    waiting.append(client)
            try:
                started = time.perf_counter()
                entry = cs.probe_endpoint("unix://" + peer.path, peer.path, timeout=timeout)
                elapsed = time.perf_counter() - started
                tracemalloc.start()
                cs.probe_endpoint("unix://" + peer.path, peer.path, timeout=timeout)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            finally:
                for client in waiting:
                    client.close()
                peer.close()
            worst = max(worst, (elapsed, name))
            worst_memory = max(worst_memory, (peak, name))
            print("  %-38s %6.3f s %8.1f KiB  %s" % (name, elapsed, peak / 1024.0, entry["reason"][:100]))
        listeners = []
        for index in range(50):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(str(Path(workdir) / ("silent%d.sock" % index)))
            sock.listen(1)
            listeners.append(sock)
        started = time.perf_counter()
        try:
            cs.detect([s.getsockname() for s in listeners], timeout=timeout)
        except cs.CriSocketError:
            pass
        together = time.perf_counter() - started
        for sock in listeners:
            sock.close()
    print("worst hostile probe: %.3f s (%s), target < %.1f s; worst peak memory %.1f KiB (%s)" % (
        worst[0], worst[1], timeout + 0.5, worst_memory[0] / 1024.0, worst_memory[1]))
    print("50 silent candidates in one detect: %.3f s (they are probed at the same time; one after another would be %.0f s)"
          % (together, 50 * timeout))
    return max(worst[0], together)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--reuse", nargs="+", metavar="ENDPOINT", help="time these endpoints instead of starting daemons")
    parser.add_argument("--hostile-timeout", type=float, default=2.0, help="timeout for the hostile listeners (default 2)")
    parser.add_argument("--no-daemons", action="store_true", help="only the hostile listeners")
    args = parser.parse_args(argv)
    _ensure_link()
    bounded = hostile_figures(args.hostile_timeout) < args.hostile_timeout + 0.5
    if args.no_daemons:
        return 0 if bounded else 1
    if args.reuse:
        worst = report(args.reuse, args.rounds)
        time_module_process(args.reuse, 5)
        return 0 if worst < 1.0 and bounded else 1

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
    return 0 if worst < 1.0 and bounded else 1


if __name__ == "__main__":
    sys.exit(main())
