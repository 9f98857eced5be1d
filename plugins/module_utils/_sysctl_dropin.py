# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A sysctl.d drop-in file and the running kernel's values, for ``kubeforge.cluster.sysctl_dropin``.

Pure functions over a ``/proc/sys`` directory and file texts, so unit tests use fake trees.
"""

from __future__ import annotations

import errno
import os
import re

HEADER = "# Managed by kubeforge.cluster.sysctl_dropin: changes here are overwritten.\n"
# Directories systemd-sysctl reads, in priority order (a name in an earlier one hides the same name later).
SYSCTL_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.*/:@-]+$")


class SysctlError(Exception):
    """A problem the user must fix; the message says which key and how."""


def canonical_key(key):
    """The key as sysctl prints it: dots between components (``net/ipv4/ip_forward`` -> ``net.ipv4.ip_forward``).

    With ``/`` separators a component may contain dots (``net/ipv4/conf/eth0.100/forwarding``); those dots
    become ``/`` in the dotted form, as sysctl(8) does.
    """
    key = key.strip()
    if "/" in key:
        return ".".join(part.replace(".", "/") for part in key.strip("/").split("/"))
    return key


def proc_path(proc_sys, key):
    """File under ``proc_sys`` for a canonical (dotted) key."""
    parts = [part.replace("/", ".") for part in canonical_key(key).split(".")]
    return os.path.join(proc_sys, *parts)


def normalize_value(value):
    """Values compare as sysctl prints them: words separated by one space; booleans as 1/0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return " ".join(normalize_value(v) for v in value)
    return " ".join(str(value).split())


def parse_conf(text):
    """``{key: value}`` from sysctl.d text (last assignment wins, comments and ``-`` prefixes handled)."""
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().lstrip("-").strip()
        values[canonical_key(key)] = normalize_value(value)
    return values


def render(settings):
    return HEADER + "".join("%s = %s\n" % (key, value) for key, value in settings.items())


def read_runtime(proc_sys, key):
    """The running value of ``key`` (normalized), or None when the kernel has no such key."""
    try:
        with open(proc_path(proc_sys, key)) as handle:
            return normalize_value(handle.read())
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise SysctlError("cannot read %s (%s): %s" % (key, proc_path(proc_sys, key), exc.strerror)) from None


def validate(settings, raise_only):
    """Normalize ``settings`` and check ``raise_only``; returns an ordered ``{canonical key: value}``."""
    wanted = {}
    for key, value in (settings or {}).items():
        key = str(key)
        if not _KEY_RE.match(key.strip()) or key.strip().strip("./") == "":
            raise SysctlError("settings: %r is not a sysctl key (for example net.ipv4.ip_forward)" % key)
        if value is None or normalize_value(value) == "":
            raise SysctlError("settings: %s has no value; give one, or remove the key" % key)
        wanted[canonical_key(key)] = normalize_value(value)
    for key in raise_only or []:
        ckey = canonical_key(str(key))
        if ckey not in wanted:
            raise SysctlError("raise_only names %s, which is not in settings; add it to settings or remove it from raise_only" % key)
        if not re.match(r"^-?[0-9]+$", wanted[ckey]):
            raise SysctlError("raise_only: %s = %r is not a single integer, so it cannot be compared; remove it from raise_only" % (key, wanted[ckey]))
    return wanted


def plan(wanted, raise_only, runtime):
    """Decide the values to persist and apply.

    ``runtime`` maps canonical keys to the running value (None when absent). For a ``raise_only`` key the
    effective value is the larger of the wanted and the running one, so a higher host value is kept (and
    persisted, so that it survives a reboot). Returns ``(effective, kept)`` where ``kept`` lists the keys whose
    higher running value won.
    """
    raise_keys = {canonical_key(str(k)) for k in raise_only or []}
    effective = {}
    kept = {}
    for key, value in wanted.items():
        current = runtime.get(key)
        if key in raise_keys and current is not None and re.match(r"^-?[0-9]+$", current) and int(current) > int(value):
            effective[key] = current
            kept[key] = {"wanted": value, "current": current}
        else:
            effective[key] = value
    return effective, kept


def write_runtime(proc_sys, key, value):
    """Write one value to the running kernel; SysctlError with the cause and the fix on failure."""
    path = proc_path(proc_sys, key)
    if not os.path.isfile(path):
        raise SysctlError("cannot set %s: the running kernel has no such key (%s does not exist)%s" % (key, path, missing_hint(key)))
    try:
        with open(path, "w") as handle:
            handle.write(value + "\n")
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise SysctlError(
                "cannot set %s = %s: %s is read-only here (%s). /proc/sys is mounted read-only, as in an unprivileged "
                "container; run the machine with a writable /proc/sys (for example systemd-nspawn with "
                "SYSTEMD_NSPAWN_API_VFS_WRITABLE=1, or a privileged container), or set the value on the host, "
                "or use apply=false to only write the file" % (key, value, path, exc.strerror)) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise SysctlError("cannot set %s: the running kernel has no such key (%s does not exist)%s" % (key, path, missing_hint(key))) from None
        if exc.errno == errno.EINVAL:
            raise SysctlError("the kernel rejected %s = %s (invalid argument); check the value" % (key, value)) from None
        raise SysctlError("cannot set %s = %s (%s): %s" % (key, value, path, exc.strerror)) from None


def missing_hint(key):
    if key.startswith("net.bridge."):
        return "; net.bridge.* keys appear when br_netfilter is loaded (run kubeforge.cluster.kernel_modules first)"
    if key.startswith("net.netfilter.nf_conntrack"):
        return "; nf_conntrack keys appear when nf_conntrack is loaded"
    return ""


def boot_overrides(root, own_path, effective):
    """Keys of ``effective`` that a file read after ours by systemd-sysctl sets to another value.

    Returns ``[(key, file, value)]``.
    """
    chosen = {}
    for directory in SYSCTL_DIRS:
        full = os.path.join(root, directory)
        try:
            names = os.listdir(full)
        except OSError:
            continue
        for name in names:
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = os.path.join(full, name)
    own_name = os.path.basename(own_path)
    chosen[own_name] = own_path
    found = []
    for name in sorted(chosen):
        if name <= own_name:
            continue
        try:
            with open(chosen[name]) as handle:
                values = parse_conf(handle.read())
        except OSError:
            continue
        for key, value in values.items():
            if key in effective and value != effective[key]:
                shown = "/" + os.path.relpath(chosen[name], root) if root not in ("", "/") else chosen[name]
                found.append((key, shown, value))
    return found
