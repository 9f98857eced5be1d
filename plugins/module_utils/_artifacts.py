# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a release artifact is and what it installs, for ``kubeforge.cluster.release_artifact``.

Shared by the action plugin (the controller verifies a local artifact and hashes its members, so a converged node
needs no transfer) and the node-side module (which reads a downloaded or transferred artifact the same way).
Stdlib only. Every error is an ``ArtifactError`` whose message starts with the role variable the source came from
(``variable`` option, e.g. ``crictl_artifacts_dir``), so a user sees which setting to fix.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile

from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import (
    InputError,
    absolute_path,
    octal_mode,
    path_under,
    require_dict,
    require_int,
    require_list,
    require_str,
    safe_name,
    sha256_checksum,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import url as valid_url

BINARY = "binary"
TAR = "tar"
PACKAGE = "package"
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")
PACKAGE_SUFFIXES = (".deb", ".rpm")
CHUNK = 1024 * 1024
# Permission bits a member keeps from the archive when no mode is given: no set-id, sticky or group/other write.
ARCHIVE_MODE_MASK = 0o755


def argument_spec():
    """The options of release_artifact (the module and its action plugin validate against the same spec)."""
    return dict(
        src=dict(type="str"),
        remote_src=dict(type="bool", default=False),
        url=dict(type="str"),
        checksum=dict(type="str"),
        checksum_file=dict(type="str"),
        format=dict(type="str", choices=["auto", "binary", "tar", "package"], default="auto"),
        dest=dict(type="str"),
        members=dict(type="list", elements="raw"),
        strip_components=dict(type="int", default=0),
        mode=dict(type="raw"),
        owner=dict(type="str", default="root"),
        group=dict(type="str", default="root"),
        variable=dict(type="str"),
        state_dir=dict(type="str", default="/var/lib/kubeforge/artifacts"),
        timeout=dict(type="int", default=60),
        validate_certs=dict(type="bool", default=True),
        allow_downgrade=dict(type="bool", default=False),
        # set by the action plugin: the member hashes it computed, and "only compare, the artifact is not on the node"
        expected_files=dict(type="dict"),
        compare_only=dict(type="bool", default=False),
    )


class ArtifactError(Exception):
    """A problem with the artifact or the request; ``msg`` names the variable and the file."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def detect_format(filename, requested="auto"):
    if requested != "auto":
        return requested
    lowered = filename.lower()
    if lowered.endswith(TAR_SUFFIXES):
        return TAR
    if lowered.endswith(PACKAGE_SUFFIXES):
        return PACKAGE
    return BINARY


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_checksum_file(text):
    """``[(sha256, name)]`` from ``sha256sum`` output (``HEX  name`` / ``HEX *name``) or BSD style
    (``SHA256 (name) = HEX``); comments, blank lines and other algorithms are skipped."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([0-9a-fA-F]{64}) [ *]?(.+)$", line)
        if match:
            entries.append((match.group(1).lower(), match.group(2).strip()))
            continue
        match = re.match(r"^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$", line)
        if match:
            entries.append((match.group(2).lower(), match.group(1)))
    return entries


def lookup_checksum(text, basename, where, variable):
    """The checksum listed for ``basename`` in a checksum file (its entries are matched by base name)."""
    found = {digest for digest, name in parse_checksum_file(text) if os.path.basename(name.lstrip("*")) == basename}
    if not found:
        raise ArtifactError("%s: %s is not listed in %s; add its line (sha256sum %s >> %s)"
                            % (variable, basename, where, basename, os.path.basename(where)))
    if len(found) > 1:
        raise ArtifactError("%s: %s lists %s with %d different checksums; keep one line for it" % (variable, where, basename, len(found)))
    return found.pop()


def mismatch_message(variable, what, actual, expected, source):
    return ("%s: %s has sha256 %s, but %s says %s; nothing was changed. Replace the file or fix the checksum"
            % (variable, what, actual, source, expected))


class Target:
    """One file to install: ``member`` (its path in the archive after strip_components; None for a binary),
    ``dest`` and ``mode`` (None: the archive's mode, masked)."""

    def __init__(self, member, dest, mode=None):
        self.member = member
        self.dest = dest
        self.mode = mode

    def __repr__(self):
        return "Target(%r, %r, %r)" % (self.member, self.dest, self.mode)


def _member_path(option, value):
    """A relative path inside an archive: plain components only, so it can be joined under ``dest`` safely."""
    require_str(option, value)
    parts = [part for part in value.strip("/").split("/") if part not in ("", ".")]
    if not parts:
        raise InputError(option, "%r names no file in the archive" % value)
    for part in parts:
        if part == "..":
            raise InputError(option, "%r must not contain '..'" % value)
    return "/".join(parts)


def parse_targets(params, fmt):
    """``[Target]`` for binary and tar formats, or None for a tar with every regular file (``members`` unset)."""
    dest = absolute_path("dest", params["dest"]) if params.get("dest") is not None else None
    mode = octal_mode("mode", params["mode"]) if params.get("mode") is not None else None
    require_int("strip_components", params.get("strip_components", 0), minimum=0, maximum=64)
    if fmt == BINARY:
        if dest is None:
            raise InputError("dest", "is required for a single binary: the path to install it at, e.g. /usr/local/bin/crictl")
        if params.get("members"):
            raise InputError("members", "only applies to archives; this artifact is a single binary (set format=tar if it is one)")
        return [Target(None, dest, 0o755 if mode is None else mode)]
    if fmt == PACKAGE:
        for option in ("dest", "members", "mode"):
            if params.get(option):
                raise InputError(option, "does not apply to a package (.deb/.rpm): the package manager decides where its files go")
        return []
    members = params.get("members")
    if members is None:
        if dest is None:
            raise InputError("dest", "is required when members is not given: every regular file of the archive is installed under it")
        return None
    targets = []
    for index, item in enumerate(require_list("members", members)):
        option = "members[%d]" % index
        if isinstance(item, str):
            name = _member_path(option, item)
            if dest is None:
                raise InputError(option, "%r has no dest of its own; give dest (the directory) or {name: ..., dest: ...}" % item)
            targets.append(Target(name, path_under(dest, name.split("/"), option), mode))
            continue
        require_dict(option, item)
        unknown = sorted(set(item) - {"name", "dest", "mode"})
        if unknown:
            raise InputError(option, "unknown keys %s (allowed: name, dest, mode)" % ", ".join(unknown))
        if "name" not in item:
            raise InputError(option, "needs name: the path of the file inside the archive")
        name = _member_path(option + ".name", item["name"])
        if item.get("dest") is not None:
            member_dest = absolute_path(option + ".dest", item["dest"])
        elif dest is not None:
            member_dest = path_under(dest, name.split("/"), option)
        else:
            raise InputError(option, "needs dest (or give the directory as the top-level dest)")
        member_mode = octal_mode(option + ".mode", item["mode"]) if item.get("mode") is not None else mode
        targets.append(Target(name, member_dest, member_mode))
    dests = [t.dest for t in targets]
    duplicates = sorted({d for d in dests if dests.count(d) > 1})
    if duplicates:
        raise InputError("members", "install more than one file at %s" % ", ".join(duplicates))
    if not targets:
        raise InputError("members", "is empty: list the files to install, or leave it out to install every file")
    return targets


def parse_source(params):
    """The validated source options: url or src, the expected checksum (hex or None), the variable for messages."""
    variable = params.get("variable")
    if variable is not None:
        safe_name("variable", variable, what="variable name")
    if (params.get("url") is None) == (params.get("src") is None):
        raise InputError("src", "give exactly one of src (an artifact file) and url (a download)")
    checksum = sha256_checksum("checksum", params["checksum"]) if params.get("checksum") is not None else None
    if params.get("url") is not None:
        valid_url("url", params["url"])
        if checksum is None:
            raise InputError("checksum", "is required with url: the sha256 the download must have (from the project's release page)")
        if params.get("checksum_file") is not None:
            raise InputError("checksum_file", "applies to src only; with url give checksum")
        return variable or "url", checksum
    require_str("src", params["src"])
    if checksum is None and params.get("checksum_file") is None:
        raise InputError("checksum", "give checksum or checksum_file for %s: an artifact is installed only after its sha256 is verified"
                         % params["src"])
    if checksum is not None and params.get("checksum_file") is not None:
        raise InputError("checksum", "give checksum or checksum_file, not both")
    return variable or "src", checksum


def _strip(name, strip):
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        return None
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def archive_mode(member_mode):
    return member_mode & ARCHIVE_MODE_MASK


def link_stays_inside(name, linkname):
    """Whether a symbolic link at ``name`` (a path in the archive) pointing to ``linkname`` stays inside the archive's
    tree: relative, and not climbing above the top directory."""
    if not linkname or linkname.startswith("/"):
        return False
    joined = os.path.normpath(os.path.join(os.path.dirname(name), linkname))
    return joined != "." and joined != ".." and not joined.startswith("../")


def read_members(path, strip, targets, sink, variable, artifact_name, link_sink=None):
    """Stream the selected regular files of the tar archive at ``path`` to ``sink(target, fileobj, archive_mode)``.

    ``targets`` None selects every regular file (returned as new Targets under ``dest_dir`` by the caller's sink, which
    receives a Target with ``dest`` None), and, given ``link_sink(target, linkname)``, every symbolic link whose target
    stays inside the archive's tree (release tarballs such as Kata's point ``configuration.toml`` at one of several
    files that way). Returns the targets read, in archive order. A selected member that is missing or not a regular
    file is an error listing what the archive has.
    """
    wanted = None if targets is None else {t.member: t for t in targets}
    seen = []
    names = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = _strip(member.name, strip)
                if name is None:
                    continue
                names.append(name + ("/" if member.isdir() else ""))
                if wanted is None:
                    if member.isdir():
                        continue
                    if member.issym() and link_sink is not None:
                        if not link_stays_inside(name, member.linkname):
                            raise ArtifactError("%s: %s member %s is a link to %s, outside the archive's files; list the files to "
                                                "install in members" % (variable, artifact_name, member.name, member.linkname))
                        target = Target(name, None, None)
                        link_sink(target, member.linkname)
                        seen.append(target)
                        continue
                    if not member.isfile():
                        raise ArtifactError("%s: %s member %s is a %s, not a regular file; list the files to install in members"
                                            % (variable, artifact_name, member.name, "link" if member.issym() or member.islnk() else "special file"))
                    target = Target(name, None, None)
                elif name in wanted:
                    target = wanted[name]
                    if not member.isfile():
                        raise ArtifactError("%s: %s member %s is not a regular file (a link or directory); select the file it points to"
                                            % (variable, artifact_name, member.name))
                else:
                    continue
                handle = archive.extractfile(member)
                sink(target, handle, archive_mode(member.mode))
                seen.append(target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArtifactError("%s: %s is not a readable tar archive: %s" % (variable, artifact_name, exc)) from None
    if wanted is not None:
        missing = [name for name in wanted if name not in {t.member for t in seen}]
        if missing:
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            raise ArtifactError("%s: %s has no member %s (after strip_components=%d); it has: %s"
                                % (variable, artifact_name, ", ".join(missing), strip, shown or "no files"))
    elif not seen:
        raise ArtifactError("%s: %s holds no regular file after strip_components=%d" % (variable, artifact_name, strip))
    return seen


def member_hashes(path, strip, targets, dest_dir, variable, artifact_name):
    """``{dest: {"sha256": hex, "mode": "0755"}}`` of what the archive would install (the controller's half)."""
    result = {}

    def sink(target, handle, mode):
        digest = hashlib.sha256()
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
        dest = target.dest or path_under(dest_dir, target.member.split("/"), "members")
        result[dest] = {"sha256": digest.hexdigest(), "mode": "%04o" % (target.mode if target.mode is not None else mode)}

    def link_sink(target, linkname):
        result[path_under(dest_dir, target.member.split("/"), "members")] = {"link": linkname}

    read_members(path, strip, targets, sink, variable, artifact_name, link_sink=link_sink)
    return result
