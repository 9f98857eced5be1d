# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real containerd daemons (and other unix-socket peers) on temporary sockets, for tests.

Each daemon gets its own root, state, gRPC and ttrpc sockets under one work directory,
with the debug and metrics listeners off, the CRI streaming server on an ephemeral
loopback port and NRI off, so several can run side by side and next to a system
containerd without touching /var/lib/containerd, /run/containerd or /opt/containerd.

    from containerd_daemon import ContainerdPool

    @pytest.fixture(scope="module")
    def containerd(tmp_path_factory):
        with ContainerdPool(tmp_path_factory.mktemp("ctrd")) as pool:
            yield pool

    def test_x(containerd):
        cri = containerd.start("cri", suite="bookworm")              # CRI plugin on
        bare = containerd.start("nocri", suite="bookworm", cri=False)  # disabled_plugins = cri
        cri.endpoint  # "unix:///.../cri/containerd.sock"
        cri.ctr("version")  # this version's ctr against this daemon
        cri.config_dump()  # the effective configuration

Binaries come from ``debfetch.fetch("containerd", suite)``; when they cannot be had
(no Debian registry reachable), ``start`` calls ``pytest.skip``. Every daemon runs in its
own session and is stopped (SIGTERM, then SIGKILL after a bounded wait) when the pool
exits, also when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import debfetch

# Longest unix socket path Linux accepts is 107 bytes; leave room for ".ttrpc".
_MAX_SOCKET_DIR = 80


class DaemonError(RuntimeError):
    """A daemon did not come up; the message carries the tail of its log."""


def containerd_bin_dir(suite: str = "bookworm") -> Path:
    """Directory holding ``containerd`` and ``ctr`` of Debian ``suite`` (fetched once, cached)."""
    import pytest

    try:
        root = debfetch.fetch("containerd", suite)
    except (debfetch.DebFetchError, OSError) as exc:
        pytest.skip("containerd from Debian %s is not available here: %s" % (suite, exc))
    return Path(root) / "usr" / "bin"


def containerd_major(bin_dir: Path) -> int:
    """Major version of the containerd binary in ``bin_dir`` (1 or 2)."""
    out = subprocess.run([str(bin_dir / "containerd"), "--version"], capture_output=True, text=True, check=True).stdout
    # "containerd github.com/containerd/containerd/v2 2.1.9+unknown" / "... 1.6.20~ds1 ..."
    version = out.split()[2]
    return int(version.split(".")[0])


def containerd_config(workdir: Path, major: int, cri: bool = True) -> str:
    """TOML for one isolated containerd; ``cri=False`` disables the CRI plugin like Docker does."""
    root, state, sock = workdir / "root", workdir / "state", workdir / "containerd.sock"
    if major >= 2:
        # containerd 2.x: config version 3, plugin URIs only (it refuses the short name "cri").
        disabled = ['"io.containerd.nri.v1.nri"']
        if not cri:
            disabled.append('"io.containerd.grpc.v1.cri"')
        return (
            "version = 3\n"
            'root = "%s"\nstate = "%s"\n'
            "disabled_plugins = [%s]\n\n"
            '[grpc]\n  address = "%s"\n\n'
            '[ttrpc]\n  address = "%s.ttrpc"\n\n'
            '[debug]\n  address = ""\n\n'
            '[metrics]\n  address = ""\n\n'
            '[plugins."io.containerd.grpc.v1.cri"]\n'
            '  disable_tcp_service = true\n  stream_server_address = "127.0.0.1"\n  stream_server_port = "0"\n'
        ) % (root, state, ", ".join(disabled), sock, sock)
    # Docker's bundled config says disabled_plugins = ["cri"] in a version 1 file; version 2
    # files need the full plugin URI.
    disabled = '["io.containerd.grpc.v1.cri"]' if not cri else "[]"
    return (
        "version = 2\n"
        'root = "%s"\nstate = "%s"\n'
        "disabled_plugins = %s\n\n"
        '[grpc]\n  address = "%s"\n\n'
        '[ttrpc]\n  address = "%s.ttrpc"\n\n'
        '[debug]\n  address = ""\n\n'
        '[metrics]\n  address = ""\n\n'
        '[plugins."io.containerd.internal.v1.opt"]\n  path = "%s"\n\n'
        '[plugins."io.containerd.grpc.v1.cri"]\n'
        '  disable_tcp_service = true\n  stream_server_address = "127.0.0.1"\n  stream_server_port = "0"\n'
    ) % (root, state, disabled, sock, sock, workdir / "opt")


def wait_for_socket(path: str, timeout: float, alive=None) -> None:
    """Wait until a connect to ``path`` succeeds; ``alive()`` returning False aborts early."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1)
                probe.connect(path)
                return
        except OSError:
            pass
        if alive is not None and not alive():
            raise DaemonError("process exited before %s accepted connections" % path)
        if time.monotonic() >= deadline:
            raise DaemonError("%s did not accept connections within %.0fs" % (path, timeout))
        time.sleep(0.05)


class ContainerdDaemon:
    """One containerd process with its own root, state and sockets under ``workdir``."""

    def __init__(self, workdir: Path, bin_dir: Path, cri: bool = True):
        self.workdir = Path(workdir)
        self.bin_dir = Path(bin_dir)
        self.cri = cri
        self.major = containerd_major(self.bin_dir)
        self.socket = str(self.workdir / "containerd.sock")
        self.config_path = self.workdir / "config.toml"
        self.log_path = self.workdir / "containerd.log"
        self.process = None

    @property
    def endpoint(self) -> str:
        return "unix://" + self.socket

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 30.0) -> ContainerdDaemon:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(containerd_config(self.workdir, self.major, self.cri), encoding="utf-8")
        env = dict(os.environ, PATH="%s:%s" % (self.bin_dir, os.environ.get("PATH", "/usr/bin:/bin")))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "containerd"), "--config", str(self.config_path), "--log-level", "info"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )
        try:
            wait_for_socket(self.socket, timeout, alive=lambda: self.process.poll() is None)
        except DaemonError as exc:
            self.stop()
            raise DaemonError("containerd (%s) did not start: %s\n%s" % (self.config_path, exc, self.log_tail())) from None
        return self

    def config_dump(self) -> str:
        """``containerd config dump`` of this daemon's file: the effective, merged configuration."""
        proc = subprocess.run([str(self.bin_dir / "containerd"), "--config", str(self.config_path), "config", "dump"],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DaemonError("containerd config dump of %s failed: %s" % (self.config_path, proc.stderr.strip()))
        return proc.stdout

    def ctr(self, *args: str, namespace: str = "k8s.io", check: bool = True) -> subprocess.CompletedProcess:
        """Run this version's ``ctr`` against this daemon's socket."""
        argv = [str(self.bin_dir / "ctr"), "--address", self.socket, "--namespace", namespace, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, LC_ALL="C"))
        if check and proc.returncode != 0:
            raise DaemonError("%s failed (rc=%d): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
        return proc

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the daemon and any shim it started
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PlainUnixServer:
    """A unix socket that is not gRPC: it answers every connection with ``reply`` and closes."""

    def __init__(self, path: str, reply: bytes = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"):
        self.path = str(path)
        self.reply = reply
        self._sock = None
        self._thread = None
        self._stop = threading.Event()

    @property
    def endpoint(self) -> str:
        return "unix://" + self.path

    def start(self) -> PlainUnixServer:
        if os.path.lexists(self.path):
            os.unlink(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name="plain-unix-server", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._sock.accept()[0]
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(1)
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
        if os.path.lexists(self.path):
            os.unlink(self.path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def make_stale_socket(path: str) -> str:
    """Leave a socket file at ``path`` with no listener (what a crashed daemon leaves behind)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return "unix://" + str(path)


class ContainerdPool:
    """Start named containerd daemons under one directory and stop them all on exit."""

    def __init__(self, base_dir: Path):
        base_dir = Path(base_dir)
        self._own_dir = None
        if len(str(base_dir)) > _MAX_SOCKET_DIR - 20:
            self._own_dir = tempfile.mkdtemp(prefix="kf-ctrd-")  # keep socket paths short
            base_dir = Path(self._own_dir)
        self.base_dir = base_dir
        self.daemons = {}
        self.servers = []

    def start(self, name: str, suite: str = "bookworm", cri: bool = True, timeout: float = 30.0) -> ContainerdDaemon:
        if name in self.daemons:
            raise ValueError("daemon %r already started" % name)
        daemon = ContainerdDaemon(self.base_dir / name, containerd_bin_dir(suite), cri=cri)
        self.daemons[name] = daemon
        return daemon.start(timeout)

    def plain_server(self, name: str, reply: bytes | None = None) -> PlainUnixServer:
        (self.base_dir / name).mkdir(parents=True, exist_ok=True)
        path = self.base_dir / name / "plain.sock"
        server = PlainUnixServer(str(path)) if reply is None else PlainUnixServer(str(path), reply)
        self.servers.append(server)
        return server.start()

    def stale_socket(self, name: str) -> str:
        (self.base_dir / name).mkdir(parents=True, exist_ok=True)
        return make_stale_socket(str(self.base_dir / name / "stale.sock"))

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
        for daemon in self.daemons.values():
            daemon.stop()
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
