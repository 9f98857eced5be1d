# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifacts directories on the controller: read a ``sha256sum`` checksum file and verify files against it.

``sha256sums`` parses ``sha256sum`` output (``HEX  NAME`` or ``HEX *NAME``; comments and blank lines ignored)
into name -> lowercase hex. ``verify_sha256sums`` hashes each controller file and fails, naming the file and the
fix, when it is not listed or does not match, so a role stops before anything reaches a node.
"""

from __future__ import annotations

import hashlib
import os
import re

from ansible.errors import AnsibleFilterError

_LINE_RE = re.compile(r"^([0-9A-Fa-f]{64})\s+\*?(\S.*)$")
# (path, size, mtime) -> sha256: a file is hashed once per controller process, not once per node
_CACHE: dict[tuple, str] = {}


def sha256sums(text, option="checksum file"):
    """``{name: hex}`` from ``sha256sum`` output; a line that is neither a comment nor a checksum is an error."""
    sums = {}
    for number, line in enumerate(str(text).splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE_RE.match(stripped)
        if not match:
            raise AnsibleFilterError("%s line %d is not 'SHA256  FILENAME' (sha256sum output): %r" % (option, number, line[:120]))
        sums[os.path.basename(match.group(2))] = match.group(1).lower()
    return sums


def file_sha256(path):
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _CACHE[key] = digest.hexdigest()
    return _CACHE[key]


def verify_sha256sums(paths, sums, option="artifacts", checksum_file="SHA256SUMS"):
    """``paths`` unchanged when every file's sha256 is listed in ``sums`` and matches; else a clear error."""
    problems = []
    for path in paths:
        name = os.path.basename(path)
        if name not in sums:
            problems.append("%s is not listed in %s" % (name, checksum_file))
            continue
        try:
            actual = file_sha256(path)
        except OSError as exc:
            problems.append("%s cannot be read: %s" % (path, exc.strerror or exc))
            continue
        if actual != sums[name]:
            problems.append("%s has sha256 %s, %s says %s" % (name, actual, checksum_file, sums[name]))
    if problems:
        raise AnsibleFilterError("%s: %s. Replace the file or fix the list (sha256sum FILES > %s)."
                                 % (option, "; ".join(problems), checksum_file))
    return list(paths)


class FilterModule:
    def filters(self):
        return {"sha256sums": sha256sums, "verify_sha256sums": verify_sha256sums}
