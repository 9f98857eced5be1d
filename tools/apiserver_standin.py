# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A STAND-IN for kube-apiserver (which cannot run in the lab): a small real TLS server on :5443.

It serves ``GET /healthz`` (and any other path) with ``ok <name>`` so that a client can tell which control-plane
machine answered, keeps HTTP/1.1 connections alive (a long-lived connection survives a proxy reload), and has its
own self-signed certificate per machine, as each kubeadm apiserver has its own serving certificate. Stdlib only.

    apiserver_standin.py --cert C --key K [--port 5443] [--name NAME]
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeforge-standin-apiserver"
    # headers and body are two writes: without TCP_NODELAY the body waits for the client's delayed ACK (40 ms)
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = ("ok %s\n" % self.server.standin_name).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - quiet: the journal would fill with one line per request
        return


class Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6
    request_queue_size = 256

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 and IPv6 on one socket
        super().server_bind()

    def handle_error(self, request, client_address):
        # a client (or a proxy's health check) that goes away mid-request is normal here; anything else is printed
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, never in the accept loop.
        request.settimeout(30)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the handshake too
        try:
            request = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a bare TCP check or a client that went away
        request.settimeout(None)
        super().finish_request(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--name", default=socket.gethostname())
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = Server(("::", args.port), Handler)
    server.standin_name = args.name
    server.tls = context
    server.serve_forever()


if __name__ == "__main__":
    main()
