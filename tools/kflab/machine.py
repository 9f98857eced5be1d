# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One machine's life: its overlay on the base, its identity (hostname, hosts, resolv.conf, ssh key,
machine-id), the systemd-nspawn command line, the boot supervisor, waiting for systemd, stopping."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from . import paths
from .cleanup import StopMachine
from .errors import LabError
from .hostcmd import mounts_under, progress, run, write_atomic
from .inventory import render_hosts_file
from .process import parent_pid, pid_alive, pid_start_time, wait_pid_gone
from .ssh import ssh_argv, ssh_run
from .state import LabState, Machine, save_state

NSPAWN_ENV = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1", "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1"}
NSPAWN_REBOOT = 133  # systemd-nspawn's exit status when the machine rebooted
POWEROFF_GRACE = 20.0  # seconds a machine gets to power off before SIGTERM
TERM_GRACE = 10.0  # seconds after SIGTERM before SIGKILL


def console_log(machine: Machine) -> Path:
    return Path(machine.dir) / "console.log"


def ensure_overlay(machine: Machine, base: Path) -> None:
    mdir = Path(machine.dir)
    for sub in ("upper", "work", "root"):
        (mdir / sub).mkdir(parents=True, exist_ok=True)
    if machine.root in mounts_under(machine.root):
        return
    run(["mount", "-t", "overlay", "overlay", "-o",
         "lowerdir=%s,upperdir=%s,workdir=%s" % (base, mdir / "upper", mdir / "work"), machine.root])


def refresh_hosts(state: LabState, machine: Machine) -> None:
    """/etc/hosts lists every machine of the lab (rewritten when the lab grows or shrinks)."""
    write_atomic(Path(machine.root) / "etc/hosts", render_hosts_file(state))


def personalise(state: LabState, machine: Machine, pubkey: str) -> None:
    root = Path(machine.root)
    write_atomic(root / "etc/hostname", machine.name + "\n")
    refresh_hosts(state, machine)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    write_atomic(resolv, Path("/etc/resolv.conf").read_text(encoding="utf-8"))
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    write_atomic(ssh_dir / "authorized_keys", pubkey, 0o600)
    machine_id = root / "etc/machine-id"
    if not machine_id.exists() or not machine_id.read_text(encoding="utf-8").strip():
        write_atomic(machine_id, uuid.uuid4().hex + "\n", 0o444)
    if not (root / "etc/ssh/ssh_host_ed25519_key").exists():
        run(["ssh-keygen", "-A", "-f", str(root)])


def nspawn_argv(machine: Machine) -> list[str]:
    return [
        "systemd-nspawn", "--keep-unit", "--register=no", "--capability=all",
        "--system-call-filter=add_key keyctl request_key", "--resolv-conf=off", "--console=read-only",
        "-D", machine.root, "-b", "--network-namespace-path=/run/netns/%s" % machine.netns, "-M", machine.name,
    ]


def start_machine(state: LabState, machine: Machine) -> None:
    """Start the machine's supervisor (``lab.py _boot``) detached, in its own session; record its pid."""
    argv = [sys.executable, str(paths.LAB_PY), "_boot", "--lab", state.lab, machine.name]
    with open(console_log(machine), "ab") as handle:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    machine.pid, machine.pid_start = proc.pid, None
    for _attempt in range(50):
        machine.pid_start = pid_start_time(proc.pid)
        if machine.pid_start:
            break
        time.sleep(0.02)
    save_state(state)


def supervise(machine: Machine) -> int:
    """Run systemd-nspawn, boot again when the machine reboots (nspawn exits 133; on a host with systemd
    its unit's RestartForceExitStatus does that), and pass SIGTERM/SIGINT/SIGHUP on, which nspawn turns
    into a clean poweroff."""
    argv = nspawn_argv(machine)
    child: list[subprocess.Popen] = []
    stopping = []

    def forward(signum, _frame):
        stopping.append(signum)
        if child and child[-1].poll() is None:
            child[-1].send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        print("==== %s: boot %s ====" % (time.strftime("%Y-%m-%dT%H:%M:%S"), machine.name), flush=True)
        child.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=dict(os.environ, **NSPAWN_ENV), close_fds=True))
        if stopping:
            child[-1].send_signal(signal.SIGTERM)
        rc = child[-1].wait()
        print("==== %s: systemd-nspawn exited %d ====" % (time.strftime("%Y-%m-%dT%H:%M:%S"), rc), flush=True)
        if rc != NSPAWN_REBOOT or stopping:
            return 0 if rc in (0, NSPAWN_REBOOT) else rc
        child.clear()


def systemd_state(state: LabState, machine: Machine, wait: bool = False, timeout: float = 10) -> tuple[str, object]:
    """``systemctl is-system-running`` of the machine over ssh: (its answer, the finished process)."""
    command = "systemctl is-system-running --wait" if wait else "systemctl is-system-running"
    proc = ssh_run(machine.address, state.key, command, timeout=timeout)
    out = proc.stdout.strip()
    return (out.splitlines()[-1] if out else ""), proc


def wait_ready(state: LabState, machine: Machine, deadline: float) -> str:
    """Wait until ssh answers and systemd reports running/degraded; return that state."""
    log = console_log(machine)
    hint = "see %s; clean up with `python3 tools/lab.py down --lab %s`" % (log, state.lab)
    while True:
        if not pid_alive(machine.pid, machine.pid_start):
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-12:] if log.exists() else []
            raise LabError("machine %s: systemd-nspawn exited during boot (%s):\n  %s" % (machine.name, hint, "\n  ".join(tail)))
        status, proc = systemd_state(state, machine, wait=True, timeout=max(5, deadline - time.monotonic()))
        if status in ("running", "degraded"):
            return status
        if time.monotonic() > deadline:
            raise LabError("machine %s did not come up (ssh rc=%d, systemd %r, %s): %s"
                           % (machine.name, proc.returncode, status, proc.stderr.strip(), hint))
        time.sleep(0.5)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def stop_machines(lab: str, stops: list[StopMachine], key: str | None) -> list[str]:
    """Power machines off over ssh (in parallel), then SIGTERM/SIGKILL what is left; return errors.

    A stop without an address is a systemd-nspawn found by the scan: stopped along with its
    supervisor when it has one, else SIGTERMed at once (nspawn turns SIGTERM into a clean poweroff)."""
    errors = []
    running = [stop for stop in stops if pid_alive(stop.pid, stop.pid_start)]
    supervisors = {stop.pid for stop in running if stop.address}
    pending = []
    for stop in running:
        if not stop.address:
            if parent_pid(stop.pid) in supervisors:
                continue
            _signal(stop.pid, signal.SIGTERM)
        elif key and Path(key).exists():
            argv = ssh_argv(stop.address, key, ["systemctl poweroff --no-block"], connect_timeout=3)
            pending.append((stop.pid, subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL)))
        else:
            _signal(stop.pid, signal.SIGTERM)
        progress(lab, "%s: stopping (pid %d)" % (stop.name, stop.pid))
    for pid, proc in pending:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:  # no ssh yet (still booting) or already gone
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + POWEROFF_GRACE
    for stop in running:
        if wait_pid_gone(stop.pid, stop.pid_start, max(0.5, deadline - time.monotonic())):
            continue
        progress(lab, "%s: no poweroff within %.0f s, sending SIGTERM to pid %d" % (stop.name, POWEROFF_GRACE, stop.pid))
        _signal(stop.pid, signal.SIGTERM)
        if wait_pid_gone(stop.pid, stop.pid_start, TERM_GRACE):
            continue
        progress(lab, "%s: sending SIGKILL to pid %d" % (stop.name, stop.pid))
        _signal(stop.pid, signal.SIGKILL)
        if not wait_pid_gone(stop.pid, stop.pid_start, 5):
            errors.append("%s: pid %d does not die" % (stop.name, stop.pid))
    return errors
