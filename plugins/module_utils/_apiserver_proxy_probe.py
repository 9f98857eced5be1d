# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove that the node's apiserver proxy forwards, read-only: stdlib sockets and ssl, no Ansible imports.

Each upstream is first reached directly (TCP connect, then a TLS handshake whose server certificate identifies
it). Then connections go through the listener until every upstream that answered directly has been seen behind
it, recognised by its certificate (kubeadm gives each apiserver its own serving certificate). Without TLS only the
connection through the listener is judged: an L4 proxy that reaches no upstream closes it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor


def describe_error(exc, timeout):
    if isinstance(exc, socket.gaierror):
        return "the name does not resolve (%s)" % (exc.strerror or exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer within %gs" % timeout
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed (%s)" % (exc.reason or exc)
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _tls_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # identifies the server by its certificate; trust is not the question here
    return context


def connect_once(host, port, timeout, tls):
    """One connection: ``(fingerprint or "", None)`` on success, ``(None, reason)`` otherwise."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (OSError, ValueError) as exc:
        return None, describe_error(exc, timeout)
    try:
        sock.settimeout(timeout)
        if tls:
            with _tls_context().wrap_socket(sock, do_handshake_on_connect=True) as wrapped:
                der = wrapped.getpeercert(binary_form=True) or b""
                return hashlib.sha256(der).hexdigest(), None
        # An L4 proxy that reaches no upstream closes the client connection; a server that waits for the client to
        # speak first (TLS) keeps it open.
        sock.settimeout(min(timeout, 1.0))
        try:
            data = sock.recv(1)
        except (socket.timeout, TimeoutError):
            return "", None
        return ("", None) if data else (None, "closed by the proxy without an answer (no upstream reachable)")
    except (OSError, ValueError) as exc:
        if isinstance(exc, (ssl.SSLEOFError, ConnectionResetError)) or "EOF" in str(exc):
            return None, "closed by the proxy before the TLS handshake (no upstream reachable?)"
        return None, describe_error(exc, timeout)
    finally:
        sock.close()


def listener_target(address):
    """Where to connect to reach a listener on ``address`` (an unspecified address is reached on loopback)."""
    parsed = ipaddress.ip_address(address)
    if parsed.is_unspecified:
        return "::1" if parsed.version == 6 else "127.0.0.1"
    return str(parsed)


def check(listen_address, listen_port, upstreams, timeout=2.0, tls=True, attempts=0, settle=3.0, connect=connect_once):
    """Probe the upstreams directly and through the listener; returns a report dict (see the module's RETURN)."""
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(upstreams)))) as pool:
        direct = list(pool.map(lambda u: connect(u.host, u.port, timeout, tls), upstreams))
    rows = []
    by_fingerprint = {}
    for upstream, (fingerprint, reason) in zip(upstreams, direct):
        rows.append({"name": upstream.name, "address": upstream.address, "up": fingerprint is not None,
                     "reason": reason, "via_proxy": False if tls else None})
        if fingerprint:
            by_fingerprint.setdefault(fingerprint, []).append(len(rows) - 1)
    up = [row for row in rows if row["up"]]

    target = listener_target(listen_address)
    listener = "%s:%d" % ("[%s]" % target if ":" in target else target, listen_port)
    report = {"listener": listener, "listening": False, "forwarded": False, "upstreams": rows,
              "up": [row["name"] for row in up], "down": [row["name"] for row in rows if not row["up"]],
              "proxied_connections": 0, "proxied_failures": [], "distinguishable": len(by_fingerprint) == len(up)}

    # The listener: a refused connect is retried for ``settle`` seconds (a reload or start may just be binding it).
    deadline = time.monotonic() + settle
    while True:
        try:
            socket.create_connection((target, listen_port), timeout=timeout).close()
            report["listening"] = True
            break
        except OSError as exc:
            if time.monotonic() >= deadline:
                report["listen_error"] = describe_error(exc, timeout)
                return report
            time.sleep(0.2)
    if not up:
        return report

    wanted = set(range(len(rows))) - {index for index, row in enumerate(rows) if not row["up"]}
    total = attempts or max(4, 3 * len(up))
    # Rounds until every live upstream was seen: right after a reload the old workers may still take a few
    # connections with the old upstream list, and other clients' long connections skew least_conn.
    deadline = time.monotonic() + settle
    while True:
        for _attempt in range(total):
            fingerprint, reason = connect(target, listen_port, timeout, tls)
            report["proxied_connections"] += 1
            if fingerprint is None:
                report["proxied_failures"].append(reason)
                continue
            report["forwarded"] = True
            if not tls:
                return report
            for index in by_fingerprint.get(fingerprint, []):
                rows[index]["via_proxy"] = True
                wanted.discard(index)
            if fingerprint not in by_fingerprint:
                report["unknown_servers"] = report.get("unknown_servers", 0) + 1
            if not wanted:
                return report
        if not report["forwarded"] or time.monotonic() >= deadline:
            return report
        time.sleep(0.3)
