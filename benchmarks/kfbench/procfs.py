# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the benchmark reads from /proc: the host's CPU time, the CPU time of the processes inside
the lab's machines, the memory of a process tree, the load average. Linux only, stdlib only."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def host_cpu_seconds() -> float:
    """Busy CPU seconds of the whole host since boot, all CPUs: user, nice, system, irq, softirq and
    steal from /proc/stat (idle and iowait are not work; guest time is already inside user)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = handle.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def load_average() -> list[float]:
    with open("/proc/loadavg", encoding="ascii") as handle:
        return [float(x) for x in handle.read().split()[:3]]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after its last ')'
    return data[data.rindex(")") + 2:].split()


def pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def netns_inode(pid) -> int | None:
    try:
        return os.stat("/proc/%s/ns/net" % pid).st_ino
    except OSError:
        return None


def lab_netns_inodes(netns_prefix: str) -> set[int]:
    """Inodes of the network namespaces /run/netns/<prefix>* (one per lab machine)."""
    found = set()
    for path in Path("/run/netns").glob(netns_prefix + "*"):
        try:
            found.add(path.stat().st_ino)
        except OSError:
            pass
    return found


def netns_cpu_seconds(inodes: set[int]) -> float:
    """CPU seconds of every process living in one of these network namespaces: its own user and system
    time plus that of its children it has waited for. Summed over the live processes, the difference
    between two readings is the CPU the machines used in between: a process that exits hands its time
    to the parent that reaps it (sshd, systemd), which is still there."""
    total = 0
    for pid in pids():
        if netns_inode(pid) not in inodes:
            continue
        fields = _stat_fields(pid)
        if fields:
            # after the name: state ppid ... utime(14) stime(15) cutime(16) cstime(17), here 0-based from state
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def own_cpu_seconds(pid: int) -> float | None:
    """User+system time of the process itself (not of its children)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else None


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid in pids():
        fields = _stat_fields(pid)
        if fields:
            tree.setdefault(int(fields[1]), []).append(pid)
    return tree


def descendants(root: int) -> list[int]:
    tree = children_map()
    found, todo = [], list(tree.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def pss_kb(pid: int) -> int:
    """Proportional set size of one process (shared pages divided among their users, so the PSS of a
    tree of forked workers adds up to the memory it really holds, unlike the sum of their RSS)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[21]) * PAGE_KB if fields else 0
