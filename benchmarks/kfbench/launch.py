# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The process between benchmarks/converge.py and ansible-playbook, so that every controller process
of one run is a descendant of it and nothing else is.

    python launch.py RESULT.json LOG -- ansible-playbook ...

It makes itself the child subreaper (prctl PR_SET_CHILD_SUBREAPER): the ssh ControlMaster processes
that ssh daemonises (ControlPersist) are re-parented to it instead of init. While ansible-playbook
runs it samples the memory of its descendants and ansible-playbook's own CPU time (so that the
controller's CPU splits into the main process: strategy, templating, callbacks, result polling, and
the rest: forked workers and ssh); when it ends it stops the leftover masters and reaps
them, so their CPU time (the encryption of every byte sent) lands in the launcher's children rusage,
which converge.py reads. It writes its own CPU time too, so that converge.py can subtract it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

import procfs

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SAMPLE_SECONDS = 0.25


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(%d)" % option)


def make_subreaper() -> None:
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """In ansible-playbook before exec: SIGTERM when the launcher dies (converge.py interrupted and killed it)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class MemorySampler(threading.Thread):
    """Peak of the summed PSS (and of the summed RSS) of this process's descendants."""

    def __init__(self, main_pid: int):
        super().__init__(daemon=True)
        self.main_pid = main_pid
        self.main_cpu = 0.0  # ansible-playbook's own user+system time at the last sample (its workers excluded)
        self.peak_pss_kb = 0
        self.peak_rss_kb = 0
        self.peak_processes = 0
        self.stop = threading.Event()

    def sample(self):
        self.main_cpu = procfs.own_cpu_seconds(self.main_pid) or self.main_cpu
        tree = procfs.descendants(os.getpid())
        self.peak_pss_kb = max(self.peak_pss_kb, sum(procfs.pss_kb(pid) for pid in tree))
        self.peak_rss_kb = max(self.peak_rss_kb, sum(procfs.rss_kb(pid) for pid in tree))
        self.peak_processes = max(self.peak_processes, len(tree))

    def run(self):
        while not self.stop.wait(SAMPLE_SECONDS):
            self.sample()


def reap_leftovers() -> int:
    """Stop what is left below us (ssh masters kept by ControlPersist, mitogen's helpers) and reap it."""
    left = procfs.descendants(os.getpid())
    for pid in left:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
    for pid in procfs.descendants(os.getpid()):
        os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return len(left)


def main(argv: list[str]) -> int:
    result_path, log_path, separator, *command = argv
    assert separator == "--" and command, "usage: launch.py RESULT LOG -- COMMAND..."
    make_subreaper()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)  # pylint: disable=subprocess-popen-preexec-fn  # no threads yet
        sampler = MemorySampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            rc = proc.wait()
    sampler.stop.set()
    sampler.join()
    leftovers = reap_leftovers()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "rc": rc,
        "launcher_cpu": own.ru_utime + own.ru_stime,
        "peak_pss_mb": round(sampler.peak_pss_kb / 1024, 1),
        "peak_rss_sum_mb": round(sampler.peak_rss_kb / 1024, 1),
        "peak_processes": sampler.peak_processes,
        "max_rss_mb": round(children.ru_maxrss / 1024, 1),  # the largest single process (Linux: kB)
        "leftover_processes": leftovers,
        "main_process_cpu": round(sampler.main_cpu, 2),
    }
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
