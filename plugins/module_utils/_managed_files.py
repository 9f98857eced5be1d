# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole files and directories a role owns, inspected and fixed in one module run (kubeforge.cluster.managed_files).

``template`` or ``copy`` of an unchanged file costs two module runs on the node (a stat, then ``file`` for the
attributes) and a directory one more: a converge that changes nothing pays for each. This plans every entry from one
look at the node, compares bytes, mode and owner (data, not timestamps), and writes through ``_files`` (the symlink
rule, atomic replace under a directory lock, a backup on request).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

from ansible_collections.kubeforge.cluster.plugins.module_utils._files import ManagedFileError, read_bytes, replace_file, resolve_managed
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    octal_mode,
    require_dict,
    require_keys,
    require_boolean,
    require_str,
    safe_name,
    type_name,
)

FILE_KEYS = ("path", "content", "mode", "owner", "group", "name", "follow")
DIRECTORY_KEYS = ("path", "mode", "owner", "group", "name")
MAX_CONTENT = 4 << 20


class PartialWriteError(ManagedFileError):
    """Writing failed after ``written`` (names) had been changed."""

    def __init__(self, message, written):
        super().__init__(message)
        self.written = written


class Entry:
    """One wanted file (``content`` set) or directory."""

    def __init__(self, option, spec, is_file):
        require_dict(option, spec)
        require_keys(option, spec, FILE_KEYS if is_file else DIRECTORY_KEYS, required=("path", "content") if is_file else ("path",))
        self.path = absolute_path(option + ".path", spec["path"])
        if self.path == "/":
            raise InputError(option + ".path", "must name a file or directory below /")
        self.content = _content(option + ".content", spec["content"]) if is_file else None
        self.mode = octal_mode(option + ".mode", spec.get("mode", "0644" if is_file else "0755"))
        self.owner = safe_name(option + ".owner", spec.get("owner", "root"), what="user name")
        self.group = safe_name(option + ".group", spec.get("group", "root"), what="group name")
        self.name = require_str(option + ".name", spec.get("name", self.path), max_length=255)
        self.follow = require_boolean(option + ".follow", spec.get("follow", True))
        if self.follow is False and not is_file:
            raise InputError(option + ".follow", "applies to files only")


def _content(option, value):
    """Text of a file: any characters but NUL (tabs and carriage returns are the file's business), at most 4 MiB."""
    if not isinstance(value, str):
        raise InputError(option, "must be the file's text, a string, got %s" % type_name(value))
    if "\x00" in value:
        raise InputError(option, "contains a NUL character at position %d; a text file cannot hold one" % value.index("\x00"))
    if len(value) > MAX_CONTENT:
        raise InputError(option, "is %d characters long, more than the %d allowed" % (len(value), MAX_CONTENT))
    return value


def parse(files, directories):
    """``(directories, files)`` as Entry lists; an InputError names the item and the key. A path and a name may each
    appear once (the result is keyed by name)."""
    parsed_dirs = [Entry("directories[%d]" % i, d, False) for i, d in enumerate(directories or [])]
    parsed_files = [Entry("files[%d]" % i, f, True) for i, f in enumerate(files or [])]
    for key in ("path", "name"):
        seen = set()
        for entry in parsed_dirs + parsed_files:
            value = getattr(entry, key)
            if value in seen:
                raise InputError("files", "the %s %s is listed twice; list each %s once" % (key, value, key))
            seen.add(value)
    return parsed_dirs, parsed_files


def ids(entry):
    """``(uid, gid)`` of the entry's owner and group, or None for a name this host does not know."""
    try:
        uid = pwd.getpwnam(entry.owner).pw_uid
    except KeyError:
        uid = None
    try:
        gid = grp.getgrnam(entry.group).gr_gid
    except KeyError:
        gid = None
    return uid, gid


def plan_directory(entry, uid, gid):
    """What must change for ``entry``: ``[]``, or reasons such as ``create``, ``mode 0700 -> 0755``, ``owner``."""
    try:
        st = os.lstat(entry.path)
    except FileNotFoundError:
        return ["create"]
    if not stat.S_ISDIR(st.st_mode):
        raise ManagedFileError("%s exists and is not a directory (a link or a file); move it away or choose another path" % entry.path)
    return _attribute_changes(st, entry, uid, gid)


def _attribute_changes(st, entry, uid, gid):
    """``mode 0700 -> 0755`` and ``owner`` when ``st`` differs from the entry (an unknown owner always differs)."""
    changes = []
    if stat.S_IMODE(st.st_mode) != entry.mode:
        changes.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), entry.mode))
    if (st.st_uid, st.st_gid) != (uid, gid):
        changes.append("owner")
    return changes


def plan_file(entry, uid, gid):
    """``(resolved path, current bytes or None, reasons)`` for a wanted file. With ``follow`` false a symlink at the
    path (such as the link to /dev/null that masks a unit until its file is written) is replaced by the file."""
    if not entry.follow and os.path.islink(entry.path):
        return entry.path, None, ["replace link"]
    resolved = resolve_managed(entry.path)
    current = read_bytes(resolved)
    if current is None:
        return resolved, None, ["create"]
    reasons = [] if current == entry.content.encode("utf-8") else ["content"]
    return resolved, current, reasons + _attribute_changes(os.stat(resolved), entry, uid, gid)


def apply_directory(entry, uid, gid):
    if not os.path.isdir(entry.path):
        parent = os.path.dirname(entry.path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        os.mkdir(entry.path, entry.mode)
    os.chown(entry.path, uid, gid, follow_symlinks=False)
    os.chmod(entry.path, entry.mode)


def apply_file(module, entry, resolved, current, uid, gid, backup):
    """Write the content when it differs (atomic, a change by another writer fails), then the owner and mode."""
    backup_file = None
    if not entry.follow and os.path.islink(resolved):
        os.unlink(resolved)
    if current is None or current != entry.content.encode("utf-8"):
        backup_file = replace_file(module, resolved, entry.content, mode=entry.mode,
                                   expected=current if current is not None else False, backup=backup)
    os.chown(resolved, uid, gid)
    os.chmod(resolved, entry.mode)
    return backup_file


def missing_owner_message(entry):
    return ("%s: the owner %s:%s does not exist on this host; create the user and group first (the package that "
            "brings them, or a user task), or set another owner" % (entry.path, entry.owner, entry.group))


def run(module, params):
    """The module's result dict; raises InputError or ManagedFileError before anything is written on bad input."""
    directories, files = parse(params["files"], params["directories"])
    result = {"changed": False, "changed_names": [], "entries": {}}
    diffs = []
    planned = []
    for entry in directories:
        uid, gid = ids(entry)
        reasons = plan_directory(entry, uid, gid)
        planned.append((entry, uid, gid, None, None, reasons))
    for entry in files:
        uid, gid = ids(entry)
        resolved, current, reasons = plan_file(entry, uid, gid)
        planned.append((entry, uid, gid, resolved, current, reasons))
    # every owner must exist before the first write (nothing half-done); check mode only warns: an earlier task
    # of the same run (a package) may create the user
    for entry, uid, gid, _resolved, _current, reasons in planned:
        if reasons and (uid is None or gid is None):
            if not module.check_mode:
                raise InputError("owner", missing_owner_message(entry))
            module.warn(missing_owner_message(entry) + " (check mode: reported as a change)")
    for entry, uid, gid, resolved, current, reasons in planned:
        record = {"path": entry.path, "changed": bool(reasons), "reasons": reasons}
        result["entries"][entry.name] = record
        if not reasons:
            continue
        result["changed"] = True
        result["changed_names"].append(entry.name)
        if entry.content is not None and ("create" in reasons or "content" in reasons or "replace link" in reasons):
            diffs.append({"before_header": entry.path, "after_header": entry.path,
                          "before": current.decode("utf-8", errors="replace") if current is not None else "",
                          "after": entry.content})
        else:
            diffs.append({"before_header": entry.path, "after_header": entry.path,
                          "before": "%s\n" % ", ".join(reasons), "after": "mode %04o, owner %s:%s\n" % (entry.mode, entry.owner, entry.group)})
        if module.check_mode:
            continue
        try:
            if entry.content is None:
                apply_directory(entry, uid, gid)
            else:
                backup_file = apply_file(module, entry, resolved, current, uid, gid, params["backup"])
                if backup_file:
                    record["backup_file"] = backup_file
        except OSError as exc:
            written = result["changed_names"][:-1]
            raise PartialWriteError("%s: %s (changed before it: %s)" % (entry.path, exc.strerror, ", ".join(written) or "nothing"),
                                    written) from None
    return result, diffs
