# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the node-local apiserver proxy costs: requests/s and the added latency of nginx and haproxy, each running
the configuration kubeforge.cluster.apiserver_proxy renders, against a STAND-IN TLS apiserver on the same machine
(tools/apiserver_standin.py; kube-apiserver is not available here) reached directly.

Latency is measured two ways, request by request alternating between direct, nginx and haproxy so that the shared
machine's load hits all three alike: a ``GET /healthz`` round trip on an established TLS connection (what a watch or a kubelet
request pays once connected), and a new connection (TCP + TLS handshake + one request). Requests/s: several client
processes, each on its own keep-alive connection, in one-second runs alternating between the targets (median). Target: well under 1 ms added at the median.
Real Debian bookworm nginx and haproxy, fetched with tools/debfetch.py; run as root (workers switch to www-data).

    python benchmarks/apiserver_proxy_latency.py [--round-trips 3000] [--connections 300] [--seconds 1] [--rounds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
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


def connect(port):
    from apiserver_proxy_client import CONTEXT

    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return CONTEXT.wrap_socket(raw)


def interleaved_round_trips(ports, count):
    """``{port: [seconds]}``: one established connection per port, requests alternating between them."""
    from apiserver_proxy_client import request

    connections = {port: connect(port) for port in ports}
    samples = {port: [] for port in ports}
    try:
        for conn in connections.values():
            for _warm_up in range(20):
                request(conn)
        for _request in range(count):
            for port, conn in connections.items():
                started = time.perf_counter()
                request(conn)
                samples[port].append(time.perf_counter() - started)
    finally:
        for conn in connections.values():
            conn.close()
    return samples


def interleaved_new_connections(ports, count):
    """``{port: [seconds]}``: connect + TLS handshake + one request + close, alternating between the ports."""
    from apiserver_proxy_client import request

    samples = {port: [] for port in ports}
    for round_number in range(count + 10):
        for port in ports:
            started = time.perf_counter()
            with connect(port) as conn:
                request(conn)
            if round_number >= 10:  # the first ten rounds warm up
                samples[port].append(time.perf_counter() - started)
    return samples


def _client(port, seconds, queue):
    from apiserver_proxy_client import request

    done = 0
    with connect(port) as conn:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            request(conn)
            done += 1
    queue.put(done)


def throughput(port, seconds, clients):
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_client, args=(port, seconds, queue)) for _client_number in range(clients)]
    for worker in workers:
        worker.start()
    total = sum(queue.get(timeout=seconds + 60) for _worker in workers)
    for worker in workers:
        worker.join()
    return total / seconds


def p99(samples):
    return sorted(samples)[int(len(samples) * 0.99) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=3000, help="requests on one established connection, per target")
    parser.add_argument("--connections", type=int, default=300, help="new connections, per target")
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of one requests/s run")
    parser.add_argument("--rounds", type=int, default=5, help="requests/s runs per target, alternating")
    parser.add_argument("--clients", type=int, default=4, help="client processes of the requests/s run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the proxies' workers switch to www-data")
    _ensure_link()
    from proxy_daemons import Proxy, Standin, binaries

    tools = binaries()
    with tempfile.TemporaryDirectory(prefix="kf-proxy-bench-") as directory:
        backend = Standin(directory, "cp1")
        upstream = [{"host": "127.0.0.1", "port": backend.port, "name": "cp1"}]
        proxies = {}
        try:
            for name in ("nginx", "haproxy"):
                (Path(directory) / name).mkdir()
                proxies[name] = Proxy(name, tools, upstream, Path(directory) / name)
            targets = {"direct": backend.port, "nginx": proxies["nginx"].port, "haproxy": proxies["haproxy"].port}
            ports = list(targets.values())
            assert len(set(ports)) == 3, targets
            by_port = interleaved_round_trips(ports, args.round_trips)
            kept = {name: by_port[port] for name, port in targets.items()}
            by_port = interleaved_new_connections(ports, args.connections)
            fresh = {name: by_port[port] for name, port in targets.items()}
            rounds = {name: [] for name in targets}
            for _round in range(args.rounds):  # short runs alternating between the targets; the median rate of each
                for name, port in targets.items():
                    rounds[name].append(throughput(port, args.seconds, args.clients))
            rates = {name: statistics.median(values) for name, values in rounds.items()}
        finally:
            for proxy in proxies.values():
                proxy.stop()
            backend.stop()

    us = 1e6
    print("apiserver proxy latency (stand-in TLS apiserver on 127.0.0.1; load average %s; %d cores)"
          % (" ".join("%.1f" % value for value in os.getloadavg()), os.cpu_count()))
    print("%-8s %9s | %-34s | %-34s" % ("target", "req/s", "established connection: median / p99", "new connection (TCP+TLS+request)"))
    direct_kept, direct_fresh = statistics.median(kept["direct"]), statistics.median(fresh["direct"])
    for name in targets:
        k_med, k_p99 = statistics.median(kept[name]), p99(kept[name])
        f_med, f_p99 = statistics.median(fresh[name]), p99(fresh[name])
        added = "" if name == "direct" else " (+%.0f)" % ((k_med - direct_kept) * us)
        added_fresh = "" if name == "direct" else " (+%.0f)" % ((f_med - direct_fresh) * us)
        print("%-8s %9.0f | %6.0f us%-8s / %7.0f us      | %7.0f us%-8s / %7.0f us"
              % (name, rates[name], k_med * us, added, k_p99 * us, f_med * us, added_fresh, f_p99 * us))
    for name in ("nginx", "haproxy"):
        added_kept = (statistics.median(kept[name]) - direct_kept) * us
        added_p99 = (p99(kept[name]) - p99(kept["direct"])) * us
        verdict = "well under 1 ms" if added_kept < 500 else ("under 1 ms" if added_kept < 1000 else "NOT under 1 ms")
        print("%s adds %.0f us at the median and %.0f us at p99 on an established connection: %s"
              % (name, added_kept, added_p99, verdict))


if __name__ == "__main__":
    main()
