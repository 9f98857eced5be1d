# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A sysctl.d drop-in file and the running kernel's values, for ``kubeforge.cluster.sysctl_dropin``.

A key is parsed once into its components (``parse_key``) and every path below ``/proc/sys`` is built from
those components with ``_validate.path_under``, so no key can name a file outside ``/proc/sys``.

Key grammar (procps sysctl(8) and systemd-sysctl read keys the same way): when the first separator of the key
is ``/``, components are separated by ``/`` and may contain dots (``net/ipv4/conf/eth0.100/forwarding``);
otherwise they are separated by ``.`` and a ``/`` inside a component stands for a dot
(``net.ipv4.conf.eth0/100.forwarding``, the form sysctl prints). Each component is 1-255 characters of
``[A-Za-z0-9_.@:+-]``, does not start with ``.`` and is never ``.`` or ``..``; the first does not start with
``-`` (in a sysctl.d file a leading ``-`` means "ignore errors"). Globs are refused.
"""

from __future__ import annotations

import errno
import os
import re

from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    path_under,
    require_dict,
    require_list,
    require_str,
    type_name,
)

HEADER = "# Managed by kubeforge.cluster.sysctl_dropin: changes here are overwritten.\n"
# Directories systemd-sysctl reads, in priority order (a name in an earlier one hides the same name later).
SYSCTL_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d")
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_@:+-][A-Za-z0-9_.@:+-]{0,254}$")
_INTEGER_RE = re.compile(r"^-?[0-9]+$")
MAX_VALUE_LENGTH = 4096  # a /proc/sys write is at most one page
_READ_LIMIT = 65536


class SysctlError(Exception):
    """A problem the user must fix; the message says which key and how."""


def parse_key(option, key):
    """The components of a sysctl key (a tuple), or InputError naming ``option``."""
    require_str(option, key, max_length=1024)
    text = key.strip()
    if not text:
        raise InputError(option, "must not be empty")
    first = re.search(r"[./]", text)
    if first is not None and first.group() == "/":
        components = tuple(text.split("/"))
    else:
        components = tuple(part.replace("/", ".") for part in text.split("."))
    for component in components:
        if component in ("", ".", ".."):
            raise InputError(option, "%r is not a sysctl key: it has an empty, '.' or '..' component "
                                     "(write it as net.ipv4.ip_forward or net/ipv4/ip_forward)" % key)
        if not _COMPONENT_RE.match(component):
            raise InputError(option, "%r is not a sysctl key: component %r may only contain letters, digits and "
                                     "'_.@:+-' and must not start with '.' (globs are not supported)" % (key, component))
    if components[0].startswith("-"):
        raise InputError(option, "%r is not a sysctl key: it must not start with '-'" % key)
    return components


def dotted(components):
    """The key as sysctl prints it: ``net.ipv4.conf.eth0/100.forwarding``."""
    return ".".join(component.replace(".", "/") for component in components)


def canonical_key(key, option="key"):
    return dotted(parse_key(option, key))


def proc_path(proc_sys, key, option="key"):
    """The file under ``proc_sys`` for ``key`` (a string or parsed components), proven to stay under it."""
    components = key if isinstance(key, tuple) else parse_key(option, key)
    return path_under(proc_sys, components, option=option)


def normalize_value(option, value):
    """The value as sysctl prints it (words separated by one space); strict about types.

    A string (no control characters), an integer, a bool (``1``/``0``) or a list of those (space-separated
    words, as ``net.ipv4.ip_local_port_range`` takes). Null, floats, dicts and nested lists are refused.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # Tabs separate words as spaces do (sysctl prints some values with tabs); other control characters,
        # newlines above all, would start a new line in the drop-in.
        text = " ".join(require_str(option, value.replace("\t", " "), allow_empty=True, max_length=MAX_VALUE_LENGTH).split())
    elif isinstance(value, (list, tuple)):
        words = [normalize_value("%s[%d]" % (option, index), item) if not isinstance(item, (list, tuple)) else None
                 for index, item in enumerate(value)]
        if None in words:
            raise InputError(option, "must be a list of strings or integers, not of lists")
        text = " ".join(words)
    else:
        raise InputError(option, "must be a string, an integer, a bool or a list of those, got %s%s" % (
            type_name(value), " (write it as a string or an integer)" if isinstance(value, float) else ""))
    if not text:
        raise InputError(option, "has no value; give one, or remove the key")
    if len(text) > MAX_VALUE_LENGTH:
        raise InputError(option, "is longer than %d characters" % MAX_VALUE_LENGTH)
    return text


def parse_conf(text):
    """``{dotted key: value}`` from sysctl.d text: last assignment wins; comments, ``-`` prefixes, lines
    without ``=`` and keys that are not plain sysctl keys (globs) are skipped."""
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().lstrip("-").strip()
        try:
            values[canonical_key(key)] = " ".join(value.split())
        except InputError:
            continue
    return values


def render(settings):
    return HEADER + "".join("%s = %s\n" % (key, value) for key, value in settings.items())


def validate(settings, raise_only):
    """Check the options; returns ``(wanted, components, raise_keys)``.

    ``wanted`` maps dotted keys to values in input order, ``components`` dotted keys to their parsed
    components, ``raise_keys`` is the set of dotted ``raise_only`` keys. Two spellings of one key are refused.
    """
    require_dict("settings", settings)
    wanted = {}
    components = {}
    for key, value in settings.items():
        option = "settings key %r" % key
        parts = parse_key(option, key)
        name = dotted(parts)
        if name in wanted:
            raise InputError(option, "is %s, which settings already sets under another spelling" % name)
        wanted[name] = normalize_value("settings[%r]" % key, value)
        components[name] = parts
    raise_keys = set()
    for index, key in enumerate(require_list("raise_only", raise_only)):
        name = dotted(parse_key("raise_only[%d]" % index, key))
        if name not in wanted:
            raise InputError("raise_only[%d]" % index, "names %s, which is not in settings; add it to settings or remove it "
                                                       "from raise_only" % name)
        if not _INTEGER_RE.match(wanted[name]):
            raise InputError("raise_only[%d]" % index, "%s = %r is not a single integer, so it cannot be compared; remove "
                                                       "it from raise_only" % (name, wanted[name]))
        raise_keys.add(name)
    return wanted, components, raise_keys


def plan(wanted, raise_keys, runtime):
    """Decide the values to persist and apply.

    ``runtime`` maps dotted keys to the running value (None when absent). For a ``raise_only`` key the
    effective value is the larger of the wanted and the running one, so a higher host value is kept (and
    persisted, so that it survives a reboot). Returns ``(effective, kept)``.
    """
    effective = {}
    kept = {}
    for key, value in wanted.items():
        current = runtime.get(key)
        if key in raise_keys and current is not None and _INTEGER_RE.match(current) and int(current) > int(value):
            effective[key] = current
            kept[key] = {"wanted": value, "current": current}
        else:
            effective[key] = value
    return effective, kept


def read_runtime(proc_sys, components):
    """The running value of a key (normalized), or None when the kernel has no such key."""
    path = proc_path(proc_sys, components)
    try:
        with open(path, "rb") as handle:
            return " ".join(handle.read(_READ_LIMIT).decode("utf-8", "replace").split())
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        if exc.errno == errno.EISDIR:
            raise SysctlError("%s is a group of sysctl keys (%s is a directory), not one key; name a key below it"
                              % (dotted(components), path)) from None
        raise SysctlError("cannot read %s (%s): %s" % (dotted(components), path, exc.strerror)) from None


def write_runtime(proc_sys, components, value):
    """Write one value to the running kernel; SysctlError with the cause and the fix on failure."""
    key = dotted(components)
    path = proc_path(proc_sys, components)
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


def apply_all(proc_sys, changes, components):
    """Set each ``{key: (before, after)}`` in order; all or nothing.

    When one fails (or the kernel reads back another value), the keys set before it are restored to their
    previous values in reverse order and SysctlError says which key failed and what was restored.
    """
    done = []
    for key, (before, after) in changes.items():
        try:
            write_runtime(proc_sys, components[key], after)
            now = read_runtime(proc_sys, components[key])
            if now != after:
                done.append((key, before))
                raise SysctlError("the kernel accepted %s = %s but now reports %r; use a value the kernel keeps" % (key, after, now))
        except SysctlError as exc:
            raise SysctlError(str(exc) + restore(proc_sys, done, components)) from None
        done.append((key, before))


def restore(proc_sys, done, components):
    """Put back ``[(key, before)]`` in reverse order; returns a sentence for the failure message."""
    if not done:
        return ". Nothing was changed in the running kernel"
    restored, failed = [], []
    for key, before in reversed(done):
        if before is None:
            continue
        try:
            write_runtime(proc_sys, components[key], before)
            restored.append("%s = %s" % (key, before))
        except SysctlError as exc:
            failed.append("%s (%s)" % (key, exc))
    text = ". Restored the values set before the failure: %s" % (", ".join(restored) or "none")
    if failed:
        text += "; could NOT restore: %s" % "; ".join(failed)
    return text


def boot_overrides(root, own_path, effective):
    """Keys of ``effective`` that a file read after ours by systemd-sysctl sets to another value.

    Returns ``[(key, file, value)]``. Files that cannot be read or decoded are skipped (they are not ours).
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
            with open(chosen[name], "rb") as handle:
                values = parse_conf(handle.read(1 << 20).decode("utf-8", "replace"))
        except OSError:
            continue
        for key, value in values.items():
            if key in effective and value != effective[key]:
                shown = "/" + os.path.relpath(chosen[name], root) if root not in ("", "/") else chosen[name]
                found.append((key, shown, value))
    return found
