# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight doctor's view of a node and its check runner (``kubeforge.cluster.node_doctor``).

``Host`` gathers evidence below a ``root`` directory (``/`` on a node, a fake tree in unit tests): files,
processes, listening TCP ports and the processes owning them, commands (injected ``run``), TCP
connections, name resolution, the CRI probe (``_cri_socket``) and the kernel's modules
(``_kernel_modules.HostKernel``). Nothing here changes the node. Each check in ``_node_doctor_checks``
turns evidence into one :func:`result` with a status (pass, warn, fail, skip), the cause and the fix.
"""

from __future__ import annotations

import os
import re
import socket
import time

from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cri
from ansible_collections.kubeforge.cluster.plugins.module_utils._kernel_modules import HostKernel

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)


def result(name, status, cause="", fix="", evidence=""):
    """One row of the doctor's table."""
    return {"name": name, "status": status, "cause": cause, "fix": fix, "evidence": evidence}


class Host:
    """Read-only evidence about the node below ``root``.

    ``run(argv) -> (rc, out, err)`` runs commands (None: none can be run); ``connect(host, port, timeout)``
    opens and closes a TCP connection (raises OSError when it cannot); ``cri_detect(preferred)`` returns
    ``(endpoints, selected)`` or raises ``CriSocketError``.
    """

    def __init__(self, root="/", run=None, connect=None, cri_detect=None, resolve=None, hostname=None, which=None):
        self.root = root
        self.run = run
        self.connect = connect or _tcp_connect
        self.cri_detect = cri_detect or _detect_cri
        self.resolve = resolve or socket.getaddrinfo
        self.hostname = hostname or socket.gethostname
        self.which = which or (lambda name: None)
        self.kernel = HostKernel(root=root, run=run, modprobe=None)
        self._processes = None
        self._cri = None

    def path(self, absolute):
        return os.path.join(self.root, absolute.lstrip("/"))

    def read(self, absolute):
        try:
            with open(self.path(absolute), "rb") as handle:
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return None

    def exists(self, absolute):
        return os.path.lexists(self.path(absolute))

    def listdir(self, absolute):
        try:
            return sorted(os.listdir(self.path(absolute)))
        except OSError:
            return []

    def command(self, argv):
        """``(rc, out, err)`` or None when commands cannot run or the program is not installed."""
        if self.run is None:
            return None
        program = self.which(argv[0])
        if program is None:
            return None
        return self.run([program] + list(argv[1:]))

    # processes ------------------------------------------------------------------------------
    def processes(self):
        """``[{"pid", "comm", "argv"}]`` of the running processes."""
        if self._processes is None:
            found = []
            for name in self.listdir("/proc"):
                if not name.isdigit():
                    continue
                raw = self.read("/proc/%s/cmdline" % name)
                comm = (self.read("/proc/%s/comm" % name) or "").strip()
                if raw is None:
                    continue
                argv = [part for part in raw.split("\x00") if part]
                found.append({"pid": int(name), "comm": comm or (os.path.basename(argv[0]) if argv else ""), "argv": argv})
            self._processes = found
        return self._processes

    def find_process(self, name):
        """Processes whose command name (comm, or argv[0]'s base name) is ``name``."""
        return [p for p in self.processes() if p["comm"] == name[:15] or (p["argv"] and os.path.basename(p["argv"][0]) == name)]

    # network --------------------------------------------------------------------------------
    def listening(self):
        """``{port: [{"address", "inode"}]}`` of listening TCP sockets (IPv4 and IPv6)."""
        ports = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in (self.read(table) or "").splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != "0A":  # 0A = TCP_LISTEN
                    continue
                address, _sep, port = fields[1].rpartition(":")
                ports.setdefault(int(port, 16), []).append({"address": address, "inode": fields[9]})
        return ports

    def socket_owners(self):
        """``{inode: {"pid", "comm"}}`` from the processes' file descriptors (needs root to see them all)."""
        owners = {}
        for process in self.processes():
            fd_dir = "/proc/%d/fd" % process["pid"]
            for fd in self.listdir(fd_dir):
                try:
                    target = os.readlink(self.path("%s/%s" % (fd_dir, fd)))
                except OSError:
                    continue
                match = re.match(r"^socket:\[(\d+)\]$", target)
                if match:
                    owners.setdefault(match.group(1), {"pid": process["pid"], "comm": process["comm"]})
        return owners

    def cri(self, preferred):
        """``(endpoints, selected_url_or_None, error_or_None)`` of the CRI probe, computed once."""
        if self._cri is None:
            try:
                endpoints, selected = self.cri_detect(preferred)
                self._cri = (endpoints, selected, None)
            except cri.CriSocketError as exc:
                self._cri = (exc.endpoints, None, str(exc))
            except ValueError as exc:
                self._cri = ([], None, str(exc))
        return self._cri


def _tcp_connect(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout):
        pass


def _detect_cri(preferred):
    """``(endpoints, selected)`` of :func:`_cri_socket.detect` (its selection reason is not part of the doctor's row)."""
    endpoints, selected, _reason = cri.detect(cri.KNOWN_CRI_ENDPOINTS, preferred=preferred or "", timeout=2.0)
    return endpoints, selected


def run_checks(host, params, checks, names=None):
    """Run ``checks`` (``[(name, function)]``), or the ``names`` among them, and return their rows in order.

    A check that raises is reported as a failed row naming the exception, so one broken probe does not hide
    the others.
    """
    rows = []
    for name, function in checks:
        if names and name not in names:
            continue
        try:
            row = function(host, params)
        except Exception as exc:  # noqa: BLE001 - reported as the check's own failure
            row = result(name, FAIL, "the check itself failed: %s: %s" % (type(exc).__name__, exc),
                         "report this as a bug of kubeforge.cluster.node_doctor")
        row["name"] = name
        rows.append(row)
    return rows


def summary(rows):
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row["status"]] += 1
    return counts


def now():
    return time.time()
