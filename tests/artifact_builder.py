# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release artifacts the tests build themselves: tarballs and sha256sum files (nothing binary is committed)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def make_tarball(path, members, directories=(), links=None):
    """Write a .tar.gz at ``path``; ``members`` maps archive names to bytes or (bytes, mode) or a Path to read."""
    path = Path(path)
    with tarfile.open(path, "w:gz") as archive:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for name, content in members.items():
            mode = 0o755
            if isinstance(content, tuple):
                content, mode = content
            info = tarfile.TarInfo(name)
            info.mode = mode
            if isinstance(content, Path):
                info.size = content.stat().st_size
                with content.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return path


def write_sums(directory, *names, extra=""):
    """A SHA256SUMS in ``directory`` listing ``names`` (files in it) the way sha256sum prints them."""
    directory = Path(directory)
    lines = "".join("%s  %s\n" % (sha256((directory / name).read_bytes()), name) for name in names)
    (directory / "SHA256SUMS").write_text(lines + extra)
    return directory / "SHA256SUMS"
