# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real nginx and haproxy (Debian bookworm's, fetched with tools/debfetch.py) and stand-in TLS apiservers
(tools/apiserver_standin.py) as processes on this host's loopback, for the integration tests and the benchmark.

The proxies run the configuration kubeforge.cluster.apiserver_proxy renders, as the systemd unit would start them
(nginx ``-e stderr -c CONF`` with ``daemon off``; haproxy ``-W -f CONF``), without systemd, as root (the workers
switch to www-data).
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import debfetch
from ansible_collections.kubeforge.cluster.plugins.module_utils._apiserver_proxy_render import build_spec, render_config

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tools" / "apiserver_standin.py"
HAPROXY_LIBRARIES = ("liblua5.3-0", "libopentracing-c-wrapper0", "libopentracing1")


def binaries(suite="bookworm"):
    """``{"nginx": {...}, "haproxy": {...}}``: each with ``binary``, ``env`` and for nginx ``stream_module``."""
    nginx = debfetch.fetch("nginx", suite)
    stream = debfetch.fetch("libnginx-mod-stream", suite)
    haproxy = debfetch.fetch("haproxy", suite)
    libraries = [str(debfetch.fetch(name, suite) / "usr" / "lib" / "x86_64-linux-gnu") for name in HAPROXY_LIBRARIES]
    return {
        "nginx": {"binary": str(nginx / "usr" / "sbin" / "nginx"), "env": {},
                  "stream_module": str(stream / "usr" / "lib" / "nginx" / "modules" / "ngx_stream_module.so")},
        "haproxy": {"binary": str(haproxy / "usr" / "sbin" / "haproxy"), "env": {"LD_LIBRARY_PATH": ":".join(libraries)}},
    }


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port, timeout=10.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("exited with %s before listening on %d" % (process.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %.0f s" % (port, timeout))


def self_signed(directory, name):
    """A certificate and key for a stand-in (EC P-256, one day), made with the controller's cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_file, key_file = Path(directory) / (name + ".crt"), Path(directory) / (name + ".key")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class Standin:
    """A STAND-IN apiserver process (TLS, ``GET /healthz`` -> ``ok <name>``) on 127.0.0.1:<port>."""

    def __init__(self, directory, name):
        self.name = name
        self.port = free_port()
        cert, key = self_signed(directory, name)
        self.process = subprocess.Popen([sys.executable, str(STANDIN), "--port", str(self.port), "--cert", cert, "--key", key,
                                         "--name", name], stdout=subprocess.DEVNULL)
        wait_listening(self.port, process=self.process)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Proxy:
    """nginx or haproxy running a rendered configuration; ``reload`` signals the master as the unit's ExecReload does."""

    def __init__(self, backend, tools, upstreams, directory, **params):
        self.backend = backend
        self.tools = tools[backend]
        self.port = free_port()
        self.directory = Path(directory)
        self.unit = "kf-test-%d" % self.port  # the pid file goes to /run/<unit>, as RuntimeDirectory= would make it
        os.makedirs("/run/%s" % self.unit, exist_ok=True)
        self.config = self.directory / ("%s.conf" % backend)
        self.write(upstreams, **params)
        if backend == "nginx":
            argv = [self.tools["binary"], "-e", "stderr", "-c", str(self.config)]
        else:
            argv = [self.tools["binary"], "-W", "-f", str(self.config), "-p", "/run/%s/haproxy.pid" % self.unit]
        self.log = self.directory / ("%s.log" % backend)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(argv, env=dict(os.environ, **self.tools["env"]), stdout=log, stderr=log)
        wait_listening(self.port)
        time.sleep(0.2)
        if self.process.poll() is not None:  # something else answered on the port and the proxy could not bind it
            raise RuntimeError("%s exited with %s: %s" % (backend, self.process.returncode, self.log.read_text()))

    def spec(self, upstreams, **params):
        return build_spec(dict(params, backend=self.backend, upstreams=upstreams, listen_port=self.port, user="www-data",
                               unit_name=self.unit, config_dir=str(self.directory)))

    def write(self, upstreams, **params):
        text = render_config(self.spec(upstreams, **params), self.tools.get("stream_module"))
        self.config.write_text(text)
        return text

    def reload(self, upstreams, **params):
        self.write(upstreams, **params)
        os.kill(self.process.pid, signal.SIGHUP if self.backend == "nginx" else signal.SIGUSR2)

    def children(self):
        path = Path("/proc/%d/task/%d/children" % (self.process.pid, self.process.pid))
        return sorted(int(pid) for pid in path.read_text().split())

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for name in os.listdir("/run/%s" % self.unit):
            os.unlink("/run/%s/%s" % (self.unit, name))
        os.rmdir("/run/%s" % self.unit)


class LocalModule:
    """What NodeOps needs from AnsibleModule, for running it on this host outside Ansible."""

    def __init__(self, env=None):
        self.env = env or {}
        self.tmpdir = tempfile.gettempdir()

    def run_command(self, argv, environ_update=None):
        env = dict(os.environ, **self.env, **(environ_update or {}))
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return None
