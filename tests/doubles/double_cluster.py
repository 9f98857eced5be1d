# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TEST DOUBLES' stand-in for the cluster's API (not Kubernetes).

The kubelet double on the node where ``kubeadm init`` ran serves one JSON document - the cluster state - over
plain HTTP on the API server's bind port (the port kubeadm's ``localAPIEndpoint.bindPort`` names, so the node-local
apiserver proxy forwards to it like to a real kube-apiserver; TLS is left out). The kubeadm and kubectl doubles
read it and write it back with a compare-and-swap on its ``version`` (parallel joins lose no update). State keys:
``ca_pem``, ``tokens`` ({id: {secret, expires, description}}), ``upload_certs`` ({key_sha256, expires}),
``nodes`` ({name: Node}), ``csrs`` ({name: CertificateSigningRequest}), ``objects`` ({"Kind/ns/name": object}),
``etcd_members``, ``cluster`` (ClusterConfiguration), ``kubelet_config``, ``kubernetes_version``.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

STATE_FILE = "/var/lib/kubeforge-test-doubles/apiserver-state.json"
STATE_PATH = "/kubeforge-double/state"
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class ApiError(Exception):
    pass


# --- server (run by the kubelet double) -------------------------------------------------------------------------
def serve(port, state_file=STATE_FILE):
    """Serve ``state_file`` on ``port`` until killed; one request at a time (the compare-and-swap needs no lock)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self, code, body, kind="application/json"):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path in ("/readyz", "/healthz", "/livez"):
                return self._reply(200, "ok", "text/plain")
            if self.path == STATE_PATH:
                with open(state_file, "rb") as handle:
                    return self._reply(200, handle.read())
            return self._reply(404, json.dumps({"message": "the TEST DOUBLE API serves only /readyz and %s" % STATE_PATH}))

        def do_PUT(self):  # noqa: N802
            if self.path != STATE_PATH:
                return self._reply(404, "{}")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            with open(state_file, encoding="utf-8") as handle:
                current = json.load(handle)
            if body.get("expect") != current.get("version"):
                return self._reply(409, json.dumps({"message": "conflict: version %s, expected %s" % (current.get("version"), body.get("expect"))}))
            state = body["state"]
            state["version"] = current.get("version", 0) + 1
            write_json(state_file, state)
            return self._reply(200, json.dumps({"version": state["version"]}))

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("", port), Handler)
    server.serve_forever()


def write_json(path, data, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# --- client ------------------------------------------------------------------------------------------------------
def server_of_kubeconfig(path):
    import yaml

    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    return config["clusters"][0]["cluster"]["server"]


def _url(server, path):
    hostport = server.split("://", 1)[-1].rstrip("/")
    return "http://%s%s" % (hostport, path)


def get(server, path=STATE_PATH, timeout=10.0):
    try:
        with urllib.request.urlopen(_url(server, path), timeout=timeout) as response:
            body = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError('Get "%s/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": dial tcp %s: %s'
                       % (server, server.split("://", 1)[-1], reason)) from None
    return json.loads(body) if path == STATE_PATH else body


def update(server, change, attempts=50):
    """Read the state, ``change(state)`` it in place (may raise ApiError), write it back; retried on conflicts."""
    for _attempt in range(attempts):
        state = get(server)
        result = change(state)
        data = json.dumps({"expect": state.get("version"), "state": state}).encode()
        request = urllib.request.Request(_url(server, STATE_PATH), data=data, method="PUT", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10):
                return result
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise ApiError("the TEST DOUBLE API refused the update: HTTP %s" % exc.code) from None
        time.sleep(0.05 + secrets.randbelow(100) / 1000.0)
    raise ApiError("the TEST DOUBLE API state kept changing (%d conflicts)" % attempts)


def wait_ready(server, seconds):
    deadline = time.time() + seconds
    while True:
        try:
            if get(server, "/readyz", timeout=2) == "ok":
                return
        except ApiError:
            if time.time() > deadline:
                raise
        time.sleep(0.3)


# --- PKI helpers (real openssl) ----------------------------------------------------------------------------------
def openssl(*args, data=None):
    done = subprocess.run(["openssl"] + list(args), input=data, capture_output=True, check=False)
    if done.returncode != 0:
        raise ApiError("openssl %s failed: %s" % (args[0], done.stderr.decode(errors="replace").strip()))
    return done.stdout


def make_ca(pki_dir):
    os.makedirs(pki_dir, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kubernetes", "-days", "3650",
            "-keyout", os.path.join(pki_dir, "ca.key"), "-out", os.path.join(pki_dir, "ca.crt"))
    os.chmod(os.path.join(pki_dir, "ca.key"), 0o600)


def ca_pin(ca_pem):
    """sha256:<hex> of the CA's SubjectPublicKeyInfo, the way upstream's documentation computes it with openssl."""
    public = openssl("x509", "-pubkey", "-noout", data=ca_pem.encode())
    der = openssl("pkey", "-pubin", "-outform", "der", data=public)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def serving_csr(node, addresses):
    """A kubelet serving CSR object for ``node`` (what a kubelet with serverTLSBootstrap posts)."""
    with tempfile.TemporaryDirectory() as directory:
        san = ",".join(["DNS:" + node] + ["IP:" + a for a in addresses])
        pem = openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", os.path.join(directory, "key"), "-subj", "/O=system:nodes/CN=system:node:" + node,
                      "-addext", "subjectAltName=" + san)
    name = "csr-" + random_text(5)
    return name, {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
                  "spec": {"signerName": "kubernetes.io/kubelet-serving", "username": "system:node:" + node,
                           "groups": ["system:nodes", "system:authenticated"], "usages": ["digital signature", "server auth"],
                           "request": base64.b64encode(pem).decode()},
                  "status": {}}


def random_text(length):
    return "".join(secrets.choice(ALPHABET) for dummy in range(length))


def new_token():
    return "%s.%s" % (random_text(6), random_text(16))


def duration(text):
    """kubeadm's --ttl: 15m, 24h, 1h30m, 90s, 0 (never)."""
    total, number = 0, ""
    for char in str(text):
        if char.isdigit():
            number += char
        elif char in "hms" and number:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            raise ValueError("invalid duration %r" % text)
    if number:
        if total or number != "0":
            raise ValueError("invalid duration %r (missing unit)" % text)
    return total


def kubeconfig(server, ca_pem, user):
    return ("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: %s\n  name: kubernetes\n"
            "contexts:\n- context:\n    cluster: kubernetes\n    user: %s\n  name: %s@kubernetes\ncurrent-context: %s@kubernetes\n"
            "users:\n- name: %s\n  user:\n    token: test-double-not-a-credential\n"
            % (base64.b64encode(ca_pem.encode()).decode(), server, user, user, user, user))


def write_file(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def node_object(name, address, labels, taints):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"taints": list(taints)} if taints else {},
            "status": {"addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}
