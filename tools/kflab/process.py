# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes of the lab, told apart from recycled pids by their start time (/proc/PID/stat field 22)."""

from __future__ import annotations

import time
from pathlib import Path


def pid_start_time(pid: int) -> str | None:
    """Start time of ``pid``, None when gone or a zombie."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    current = pid_start_time(pid)
    return current is not None and (start is None or current == start)


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path("/proc/%d/stat" % pid).read_text(encoding="utf-8").rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def wait_pid_gone(pid: int, start: str | None, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid, start):
            return True
        time.sleep(0.1)
    return not pid_alive(pid, start)


def nspawn_roots() -> dict[int, str]:
    """Every live systemd-nspawn process on the host and its ``-D`` directory."""
    result = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"systemd-nspawn"):
            continue
        for i, arg in enumerate(argv):
            if arg == b"-D" and i + 1 < len(argv) and pid_start_time(int(entry.name)) is not None:
                result[int(entry.name)] = argv[i + 1].decode(errors="replace")
    return result


def nspawn_pids(root_prefix: str) -> list[int]:
    """systemd-nspawn processes whose -D directory lies under ``root_prefix``."""
    return sorted(pid for pid, root in nspawn_roots().items() if root.startswith(root_prefix))
