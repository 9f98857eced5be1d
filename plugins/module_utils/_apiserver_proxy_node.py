# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the node says about the apiserver proxy: listening sockets and their processes, the unit's state, the
running binary, the nginx build, and the real binary's verdict on a candidate config.

Evidence is read from a ``/proc`` tree given as ``proc_root`` (unit tests pass a fake one); commands run through
``NodeOps`` (the seam the module tests replace), always as argv lists with ``LANGUAGE=C LC_ALL=C``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import tempfile

from ansible_collections.kubeforge.cluster.plugins.module_utils._files import replace_file

LISTEN_STATE = "0A"
C_LOCALE = {"LANGUAGE": "C", "LC_ALL": "C", "LANG": "C"}


class ProxyError(Exception):
    """A problem the operator must fix; the message names the cause and the fix."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def _hex_to_address(text):
    """An address of ``/proc/net/tcp{,6}`` (host byte order per 32-bit word) as an ``ipaddress`` object."""
    raw = bytes.fromhex(text)
    words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]
    return ipaddress.ip_address(b"".join(words))


def parse_proc_net_tcp(text):
    """``[(address, port, inode)]`` of the LISTEN sockets in one ``/proc/net/tcp`` or ``tcp6`` text."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN_STATE:
            continue
        address, _sep, port = fields[1].partition(":")
        try:
            found.append((_hex_to_address(address), int(port, 16), int(fields[9])))
        except ValueError:
            continue
    return found


def listeners(proc_root, port):
    """Every LISTEN socket on ``port`` (TCP, both families) as ``[(address, port, inode)]``."""
    result = []
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc_root, "net", name)) as handle:
                text = handle.read()
        except OSError:
            continue
        result.extend(entry for entry in parse_proc_net_tcp(text) if entry[1] == port)
    return result


def socket_owners(proc_root, inodes):
    """``{inode: [pid, ...]}`` for the given socket inodes, from every process's open file descriptors."""
    wanted = {"socket:[%d]" % inode: inode for inode in inodes}
    owners = {inode: [] for inode in inodes}
    if not wanted:
        return owners
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        fd_dir = os.path.join(proc_root, entry, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in wanted and int(entry) not in owners[wanted[target]]:
                owners[wanted[target]].append(int(entry))
    return owners


def _read(path, default=""):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return default


def process_info(proc_root, pid):
    """``{"pid", "name", "cmdline", "unit"}`` of one process; ``unit`` is its systemd service (from its cgroup) or ''."""
    base = os.path.join(proc_root, str(pid))
    cmdline = " ".join(part for part in _read(os.path.join(base, "cmdline")).split("\x00") if part)
    unit = ""
    for line in _read(os.path.join(base, "cgroup")).splitlines():
        path = line.split(":", 2)[-1]
        match = re.search(r"/([^/]+\.service)(?:/|$)", path)
        if match:
            unit = match.group(1)
    return {"pid": pid, "name": _read(os.path.join(base, "comm")).strip(), "cmdline": cmdline, "unit": unit}


def addresses_conflict(wanted, held):
    """Whether a LISTEN socket on ``held`` stops a bind of ``wanted`` (same port): same address, or either one is the
    unspecified address of the same family. Across families only the kernel knows (IPV6_V6ONLY), see ``probe_bind``."""
    wanted = ipaddress.ip_address(wanted)
    if wanted.version != held.version:
        return False
    return wanted == held or wanted.is_unspecified or held.is_unspecified


def probe_bind(address, port):
    """Try to bind ``address:port`` as nginx and haproxy do (SO_REUSEADDR, no listen); None or the error text."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "address already in use"
        if exc.errno == errno.EADDRNOTAVAIL:
            return "the node has no address %s" % address
        return exc.strerror or str(exc)
    finally:
        sock.close()
    return None


def port_users(proc_root, address, port, unit):
    """Who listens where the proxy wants to: ``(foreign, ours)``.

    ``foreign`` lists ``process_info`` dicts (plus ``"address"``) of other processes whose sockets conflict with
    ``address:port``; ``ours`` lists the addresses ``unit``'s own processes listen on at ``port``.
    """
    found = listeners(proc_root, port)
    owners = socket_owners(proc_root, [inode for _address, _port, inode in found])
    foreign = []
    ours = []
    service = unit if unit.endswith(".service") else unit + ".service"
    for held, held_port, inode in found:
        for pid in owners.get(inode) or []:
            info = process_info(proc_root, pid)
            if info["unit"] == service:
                if held not in ours:
                    ours.append(held)
                continue
            if addresses_conflict(address, held):
                info["address"] = "%s:%d" % ("[%s]" % held if held.version == 6 else held, held_port)
                foreign.append(info)
    return foreign, ours


def all_port_users(proc_root, port):
    """Every process listening on ``port`` (any address), for a message after the kernel refused a bind."""
    found = listeners(proc_root, port)
    owners = socket_owners(proc_root, [inode for _address, _port, inode in found])
    users = []
    for held, held_port, inode in found:
        for pid in owners.get(inode) or []:
            info = process_info(proc_root, pid)
            info["address"] = "%s:%d" % ("[%s]" % held if held.version == 6 else held, held_port)
            users.append(info)
    return users


def describe_process(info):
    text = "%s (pid %d" % (info["name"] or "?", info["pid"])
    if info.get("unit"):
        text += ", %s" % info["unit"]
    text += ")"
    if info.get("cmdline"):
        text += ": %s" % info["cmdline"][:200]
    return text


def running_binary_replaced(proc_root, pid, binary, libraries=()):
    """Why the process ``pid`` no longer runs what is installed (a package upgrade replaced it), or None."""
    if not pid:
        return None
    try:
        exe = os.readlink(os.path.join(proc_root, str(pid), "exe"))
    except OSError:
        return None
    if exe.endswith(" (deleted)"):
        return "the running %s was replaced on disk (%s), e.g. by a package upgrade" % (os.path.basename(binary), exe)
    maps = _read(os.path.join(proc_root, str(pid), "maps"))
    for library in libraries:
        if "%s (deleted)" % library in maps:
            return "the running master has the replaced module %s loaded (a package upgrade)" % library
    return None


def nginx_stream_support(version_text):
    """``("dynamic", modules_path)``, ``("static", None)`` or ``(None, None)`` from ``nginx -V`` output."""
    options = version_text.split()
    modules_path = "/usr/lib/nginx/modules"
    for option in options:
        if option.startswith("--modules-path="):
            modules_path = option.split("=", 1)[1]
    if "--with-stream=dynamic" in options:
        return "dynamic", modules_path
    if "--with-stream" in options:
        return "static", None
    return None, None


def parse_systemctl_show(text):
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


class NodeOps:
    """Commands on the node; module tests replace it with a fake, integration tests run it with real binaries."""

    def __init__(self, module, proc_root="/proc"):
        self.module = module
        self.proc_root = proc_root

    def run(self, argv, check=True):
        rc, out, err = self.module.run_command(argv, environ_update=C_LOCALE)
        if check and rc != 0:
            raise ProxyError("%s failed (rc %d): %s" % (" ".join(argv), rc, (err or out).strip()), rc=rc, stdout=out, stderr=err)
        return rc, out, err

    def find_binary(self, name):
        return self.module.get_bin_path(name, required=False, opt_dirs=["/usr/sbin", "/usr/local/sbin"])

    def nginx_version(self, binary):
        _rc, out, err = self.run([binary, "-V"])
        return out + err  # nginx prints its build options on stderr

    def validate(self, backend, binary, text):
        """The real binary's verdict on ``text``; ProxyError carrying its output when it refuses."""
        directory = tempfile.mkdtemp(prefix="apiserver-proxy-", dir=getattr(self.module, "tmpdir", None))
        candidate = os.path.join(directory, "candidate.conf")
        if backend == "nginx":
            # nginx -t opens (creates) the pid file; point it into the scratch directory so that judging a candidate
            # neither needs the unit's runtime directory nor leaves a file behind.
            text = re.sub(r"(?m)^pid\s+[^;]*;", "pid %s;" % os.path.join(directory, "test.pid"), text)
        try:
            with open(candidate, "w") as handle:
                handle.write(text)
            if backend == "nginx":
                argv = [binary, "-t", "-q", "-e", "stderr", "-c", candidate]
            else:
                argv = [binary, "-c", "-f", candidate]  # not -q: it hides the errors too
            rc, out, err = self.run(argv, check=False)
        finally:
            for name in os.listdir(directory):
                os.unlink(os.path.join(directory, name))
            os.rmdir(directory)
        output = (err + out).replace(candidate, "<candidate>").strip()
        if rc != 0:
            # the lines that say why (nginx "[emerg]", haproxy "[ALERT]"), not haproxy's version notices
            reasons = [line.strip() for line in output.splitlines() if "[emerg]" in line or "[ALERT]" in line] or [output]
            raise ProxyError("%s refuses the new configuration (%s); the running proxy keeps its current one:\n%s"
                             % (backend, " ".join(argv).replace(candidate, "<candidate>"), "\n".join(reasons)),
                             rc=rc, stdout=out, stderr=err)
        return output

    def service(self, unit):
        """``{"active": bool, "main_pid": int, "loaded": bool}`` from ``systemctl show``."""
        systemctl = self.module.get_bin_path("systemctl", required=True)
        _rc, out, _err = self.run([systemctl, "show", "--property=ActiveState,MainPID,LoadState", "--", unit + ".service"],
                                  check=False)
        values = parse_systemctl_show(out)
        return {
            "active": values.get("ActiveState") in ("active", "reloading", "activating"),
            "main_pid": int(values.get("MainPID") or 0),
            "loaded": values.get("LoadState") == "loaded",
        }

    def daemon_reload(self):
        self.run([self.module.get_bin_path("systemctl", required=True), "daemon-reload"])

    def port_users(self, address, port, unit):
        return port_users(self.proc_root, address, port, unit)

    def probe_bind(self, address, port):
        return probe_bind(address, port)

    def all_port_users(self, port):
        return all_port_users(self.proc_root, port)

    def binary_replaced(self, pid, binary, libraries=()):
        return running_binary_replaced(self.proc_root, pid, binary, libraries)

    def exists(self, path):
        return os.path.exists(path)

    def replace(self, path, text, expected, backup):
        """Locked compare-and-replace (``_files.replace_file``); returns the backup file or None."""
        return replace_file(self.module, path, text, mode=0o644, expected=expected, backup=backup)
