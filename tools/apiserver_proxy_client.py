# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test client run ON a lab machine against the node-local apiserver proxy (127.0.0.1 only). Stdlib only.

Every request is a new TLS connection with ``GET /healthz``; the stand-in apiserver answers ``ok <machine>``.

    apiserver_proxy_client.py count --requests 30                       # {"counts": {"cp1": 10, ...}, "errors": [...]}
    apiserver_proxy_client.py loop --requests 1500 --seconds 20         # one JSON line per request: [start, end, ok, who]
    apiserver_proxy_client.py hold --go FILE --ready FILE --seconds 300 # one connection kept open across a proxy reload

Bounded in count and time; the target is always the node's own loopback listener.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import sys
import time

CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE  # the stand-ins have self-signed certificates; who answered is in the body


def read_reply(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the reply headers")
        data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _sep, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the reply body")
        body += chunk
    status = head.split(b" ", 2)[1].decode()
    if status != "200":
        raise ConnectionError("HTTP %s" % status)
    return body.decode().split()[-1]


def request(conn):
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: kubernetes\r\nConnection: keep-alive\r\n\r\n")
    return read_reply(conn)


def one(port, timeout):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with CONTEXT.wrap_socket(raw) as conn:
            return request(conn)


def cmd_count(args):
    counts, errors = {}, []
    for _request in range(args.requests):
        try:
            who = one(args.port, args.timeout)
            counts[who] = counts.get(who, 0) + 1
        except (OSError, ConnectionError) as exc:
            errors.append(str(exc) or type(exc).__name__)
    print(json.dumps({"counts": counts, "errors": errors}))


def cmd_loop(args):
    deadline = time.time() + args.seconds
    for _request in range(args.requests):
        start = time.time()
        if start > deadline:
            break
        try:
            who, ok = one(args.port, args.timeout), True
        except (OSError, ConnectionError) as exc:
            who, ok = str(exc) or type(exc).__name__, False
        print(json.dumps([start, time.time(), ok, who]), flush=True)
        time.sleep(args.interval)


def cmd_hold(args):
    result = {}
    with socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout) as raw:
        with CONTEXT.wrap_socket(raw) as conn:
            result["local_port"] = conn.getsockname()[1]
            result["first"] = request(conn)
            with open(args.ready, "w") as handle:
                json.dump(result, handle)
            deadline = time.time() + args.seconds
            while not os.path.exists(args.go) and time.time() < deadline:
                time.sleep(0.1)
            try:
                result["second"] = request(conn)  # the same TLS connection, opened before the reload
            except (OSError, ConnectionError) as exc:
                result["error"] = str(exc) or type(exc).__name__
    with open(args.out, "w") as handle:
        json.dump(result, handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--timeout", type=float, default=5.0)
    commands = parser.add_subparsers(dest="command", required=True)
    count = commands.add_parser("count")
    count.add_argument("--requests", type=int, default=30)
    loop = commands.add_parser("loop")
    loop.add_argument("--requests", type=int, default=1500)
    loop.add_argument("--seconds", type=float, default=20.0)
    loop.add_argument("--interval", type=float, default=0.01)
    hold = commands.add_parser("hold")
    hold.add_argument("--ready", required=True)
    hold.add_argument("--go", required=True)
    hold.add_argument("--out", required=True)
    hold.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args()
    if getattr(args, "requests", 0) > 100000:
        sys.exit("at most 100000 requests")
    {"count": cmd_count, "loop": cmd_loop, "hold": cmd_hold}[args.command](args)


if __name__ == "__main__":
    main()
