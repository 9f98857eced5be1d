# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File writing shared by the collection's modules (runs on managed nodes: stdlib + AnsibleModule only)."""

from __future__ import annotations

import os
import tempfile


def write_file_atomic(module, path, text, new_file_mode=0o644):
    """Replace ``path`` with ``text`` atomically: stage a temp file in the same directory, then
    ``module.atomic_move`` it into place (which keeps an existing file's owner, mode and SELinux
    context). A missing parent directory is created (0755); a new file gets ``new_file_mode``."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, staged = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        os.chmod(staged, new_file_mode)
        module.atomic_move(staged, path, unsafe_writes=False)
    finally:
        if os.path.exists(staged):
            os.unlink(staged)
