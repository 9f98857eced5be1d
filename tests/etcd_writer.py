# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A writer loop of numbered keys against an etcd cluster, to measure what a change costs its clients.

It writes ``<prefix>/<n>`` through etcd's JSON gateway (``POST /v3/kv/put`` over TLS with a client certificate;
stdlib only) or, where etcd has no gateway (Debian's etcd 3.4 is built without it), one ``etcdctl put`` per key
(``--etcdctl``), one key after the other, switching to the next endpoint when a request fails or takes longer than
``--timeout``, until it is stopped (SIGTERM/SIGINT, ``--stop-file``) or ``--max-seconds`` pass. Then it reads the
prefix back and prints (and writes to ``--report``) the figures: writes attempted, acknowledged, lost
(acknowledged but not readable afterwards; must be 0) and the longest stall (the longest time between two
acknowledged writes).

Endpoints must lie in ``--allowed-network`` (the lab's subnet): it is a load generator and refuses anything else.

    python3 tests/etcd_writer.py --endpoints https://10.1.2.11:2379,https://10.1.2.12:2379 \\
        --ca ca.pem --cert admin.pem --key admin-key.pem --allowed-network 10.1.2.0/24 --stop-file /tmp/stop
"""

from __future__ import annotations

import argparse
import base64
import http.client
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def prefix_end(prefix):
    data = bytearray(prefix.encode())
    data[-1] += 1
    return base64.b64encode(bytes(data)).decode()


class Writer:
    def __init__(self, endpoints, ca, cert, key, prefix, timeout=2.0, interval=0.01, etcdctl=None):
        self.endpoints = list(endpoints)
        self.context = ssl.create_default_context(cafile=ca)
        self.context.load_cert_chain(cert, key)
        self.prefix, self.timeout, self.interval = prefix.rstrip("/") + "/", timeout, interval
        self.current = 0
        self.connection = None
        self.attempts = 0
        self.acknowledged = []  # key numbers
        self.ack_times = []
        self.errors = {}
        self.stop_event = threading.Event()
        self.started = self.stopped = None
        self.etcdctl = etcdctl
        self.tls = ["--cacert", ca, "--cert", cert, "--key", key]

    def _etcdctl(self, args):
        argv = [self.etcdctl, "--endpoints=" + self.endpoints[self.current], "--dial-timeout=500ms",
                "--command-timeout=%ds" % max(1, int(self.timeout))] + self.tls + args
        proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"), check=False)
        if proc.returncode != 0:
            raise OSError((proc.stderr.strip().splitlines() or ["etcdctl failed"])[-1])
        return proc.stdout

    def put(self, key, value):
        if self.etcdctl:
            self._etcdctl(["put", key, value])
        else:
            self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def _connect(self):
        url = urllib.parse.urlsplit(self.endpoints[self.current])
        self.connection = http.client.HTTPSConnection(url.hostname, url.port, context=self.context, timeout=self.timeout)

    def _post(self, path, body):
        if self.connection is None:
            self._connect()
        self.connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise OSError("HTTP %d: %s" % (response.status, data[:200]))
        return json.loads(data)

    def _rotate(self, error):
        name = type(error).__name__ + ": " + str(error)[:120]
        self.errors[name] = self.errors.get(name, 0) + 1
        if self.connection is not None:
            self.connection.close()
        self.connection = None
        self.current = (self.current + 1) % len(self.endpoints)

    def run(self):
        number = 0
        self.started = time.monotonic()
        while not self.stop_event.is_set():
            number += 1
            self.attempts += 1
            key = "%s%08d" % (self.prefix, number)
            try:
                self.put(key, str(number))
            except (OSError, http.client.HTTPException, ValueError, ssl.SSLError) as exc:
                self._rotate(exc)
                self.stop_event.wait(0.01)
                continue
            self.acknowledged.append(number)
            self.ack_times.append(time.monotonic())
            if self.interval:
                self.stop_event.wait(self.interval)
        self.stopped = time.monotonic()

    def read_back(self):
        """Key numbers readable now under the prefix (paginated range reads, any endpoint that answers)."""
        found, start = set(), _b64(self.prefix)
        for _attempt in range(len(self.endpoints) * 3):
            try:
                if self.etcdctl:
                    answer = json.loads(self._etcdctl(["get", self.prefix, "--prefix", "--keys-only", "-w", "json"]))
                    return {int(base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1]) for kv in answer.get("kvs") or []}
                while True:
                    answer = self._post("/v3/kv/range", {"key": start, "range_end": prefix_end(self.prefix), "keys_only": True,
                                                         "limit": 5000})
                    kvs = answer.get("kvs") or []
                    for kv in kvs:
                        found.add(int(base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1]))
                    if not answer.get("more"):
                        return found
                    last = base64.b64decode(kvs[-1]["key"]) + b"\x00"
                    start = base64.b64encode(last).decode()
            except (OSError, http.client.HTTPException, ValueError, ssl.SSLError) as exc:
                self._rotate(exc)
                time.sleep(0.5)
        raise RuntimeError("no endpoint answered the read-back: %s" % self.errors)

    def report(self):
        found = self.read_back()
        lost = sorted(set(self.acknowledged) - found)
        # the longest time without an acknowledged write, counting from the start and up to the stop
        marks = [self.started] + self.ack_times + [self.stopped or time.monotonic()]
        gaps = [b - a for a, b in zip(marks, marks[1:])]
        return {"writes": self.attempts, "acknowledged": len(self.acknowledged), "lost": len(lost), "lost_keys": lost[:20],
                "longest_stall_s": round(max(gaps), 3) if gaps else None, "errors": self.errors}


def check_endpoints(endpoints, network):
    allowed = ipaddress.ip_network(network)
    for endpoint in endpoints:
        host = urllib.parse.urlsplit(endpoint).hostname
        if ipaddress.ip_address(host) not in allowed:
            raise SystemExit("etcd_writer: %s is outside the allowed network %s" % (endpoint, network))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", required=True, help="comma-separated https client URLs")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--allowed-network", required=True, help="CIDR every endpoint must be in (the lab's subnet)")
    parser.add_argument("--prefix", default="/kubeforge-writer/%d" % int(time.time()))
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--stop-file", help="stop when this file exists")
    parser.add_argument("--report", help="write the figures as JSON here too")
    parser.add_argument("--label", default="writer")
    parser.add_argument("--etcdctl", help="write with this etcdctl (one process per key) instead of the JSON gateway")
    args = parser.parse_args(argv)
    endpoints = args.endpoints.split(",")
    check_endpoints(endpoints, args.allowed_network)
    writer = Writer(endpoints, args.ca, args.cert, args.key, args.prefix, etcdctl=args.etcdctl)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: writer.stop_event.set())
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.max_seconds
    while thread.is_alive() and time.monotonic() < deadline and not writer.stop_event.is_set():
        if args.stop_file and os.path.exists(args.stop_file):
            break
        time.sleep(0.1)
    writer.stop_event.set()
    thread.join(10)
    figures = dict(writer.report(), label=args.label)
    line = "%(label)s: writes %(writes)d, acknowledged %(acknowledged)d, lost %(lost)d, longest stall %(longest_stall_s)s s" % figures
    print(line, flush=True)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            json.dump(figures, handle)
    return 1 if figures["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
