# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swap off for good (kubeforge.cluster.swap_off): what is on now, what the fstab and systemd would turn on at boot.

Pure functions over text so they are unit-tested without a host; the module runs ``swapoff``, writes the fstab
through ``_files`` and masks units with ``systemctl``.
"""

from __future__ import annotations

import re

# an fstab line whose type (third field) is swap and that is not a comment
FSTAB_SWAP_RE = re.compile(r"^(\s*[^#\s]\S*\s+\S+\s+swap\s.*)$")
FSTAB_MARK = "  # swap disabled by kubeforge.cluster.node_prep"
# systemd unit names: what systemd-escape produces for a device path, plus the template '@'
UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.swap$")


def active_swaps(proc_swaps_text):
    """The swap areas /proc/swaps lists (its first line is a header)."""
    lines = [line for line in (proc_swaps_text or "").splitlines()[1:] if line.strip()]
    return [line.split()[0] for line in lines]


def comment_fstab(text):
    """``(new text, [the swap lines commented out])``; other lines, comments and the final newline are kept."""
    out = []
    commented = []
    for line in text.splitlines(True):
        body = line[:-1] if line.endswith("\n") else line
        if FSTAB_SWAP_RE.match(body):
            commented.append(body.strip())
            out.append("# " + body + FSTAB_MARK + ("\n" if line.endswith("\n") else ""))
        else:
            out.append(line)
    return "".join(out), commented


def swap_units(list_unit_files_output):
    """The unit names (sorted) of ``systemctl list-unit-files --type=swap --no-legend --plain``; a line whose name is
    not a swap unit name (systemd never prints one) is ignored rather than passed to systemctl."""
    names = {line.split()[0] for line in (list_unit_files_output or "").splitlines() if line.strip()}
    return sorted(name for name in names if UNIT_RE.match(name) and not name.startswith("-"))
