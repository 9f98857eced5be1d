# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carrying out a cleanup plan on the host: the scan that feeds it, the executor, ``down`` and the
removal of one machine from a running lab. The plan itself is in ``cleanup``."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from . import paths
from .cleanup import (Action, DeleteLink, DeleteNetns, DeleteRule, HostScan, HostSnapshot, KillNetnsProcesses,
                      RemoveLabDir, RemoveTree, RestoreIpForward, StopMachine, Unmount, plan_cleanup,
                      plan_machine_removal, select_lab_resources)
from .errors import LabError, StateError
from .hostcmd import mounts_under, progress, run, safe_rmtree
from .inventory import is_lab_inventory
from .machine import stop_machines
from .network import ip_forward_before, list_links, list_netns, list_rules, netns_pids, restore_ip_forward
from .process import nspawn_pids, nspawn_roots
from .state import LabState, load_state, save_state


def snapshot_host() -> HostSnapshot:
    return HostSnapshot(nspawn_roots=nspawn_roots(), links=list_links(), netns=list_netns(), mounts=mounts_under("/"),
                        rules=list_rules(), ip_forward_before=ip_forward_before())


def scan_host(lab: str) -> HostScan:
    return select_lab_resources(lab, snapshot_host())


class Executor:
    """Runs a plan's actions in order; collects what could not be removed instead of stopping."""

    def __init__(self, lab: str, state: LabState | None):
        self.lab = lab
        self.state = state
        self.errors: list[str] = []
        self.handlers = {
            KillNetnsProcesses: self.kill_netns_processes, Unmount: self.unmount, DeleteNetns: self.delete_netns,
            DeleteLink: self.delete_link, DeleteRule: self.delete_rule, RestoreIpForward: self.restore_ip_forward,
            RemoveTree: self.remove_tree, RemoveLabDir: self.remove_lab_dir,
        }

    def run(self, actions: list[Action]) -> list[str]:
        stops = [action for action in actions if isinstance(action, StopMachine)]
        key = (self.state.key if self.state else None) or str(paths.lab_dir(self.lab) / "id_ed25519")
        self.errors.extend(stop_machines(self.lab, stops, key))  # all at once: poweroffs run in parallel
        for action in actions:
            if not isinstance(action, StopMachine):
                self.handlers[type(action)](action)
        return self.errors

    def kill_netns_processes(self, action: KillNetnsProcesses) -> None:
        for pid in netns_pids(action.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def unmount(self, action: Unmount) -> None:
        if action.path not in mounts_under(action.path):
            return
        if run(["umount", action.path], check=False).returncode != 0:
            time.sleep(1)
            if run(["umount", action.path], check=False).returncode != 0:
                run(["umount", "-l", action.path], check=False)
        if action.path in mounts_under(action.path):
            self.errors.append("cannot unmount %s" % action.path)

    def delete_netns(self, action: DeleteNetns) -> None:
        if action.netns in list_netns():
            proc = run(["ip", "netns", "del", action.netns], check=False)
            if proc.returncode != 0:
                self.errors.append("ip netns del %s: %s" % (action.netns, proc.stderr.strip()))

    def delete_link(self, action: DeleteLink) -> None:
        if action.name in list_links():
            proc = run(["ip", "link", "del", action.name], check=False)
            # a veth also goes away on its own when its peer's namespace is deleted
            if proc.returncode != 0 and action.name in list_links():
                self.errors.append("ip link del %s: %s" % (action.name, proc.stderr.strip()))

    def delete_rule(self, action: DeleteRule) -> None:
        while run(action.rule.argv("-C"), check=False).returncode == 0:
            proc = run(action.rule.argv("-D"), check=False)
            if proc.returncode != 0:
                self.errors.append("iptables -t %s -D %s: %s" % (action.rule.table, action.rule.chain, proc.stderr.strip()))
                break

    def restore_ip_forward(self, action: RestoreIpForward) -> None:
        restore_ip_forward(action.value)

    def _may_remove(self, path: str) -> bool:
        if self.errors:
            return False  # keep what a failed step may still need; its error is reported already
        left = mounts_under(path)
        if left:
            self.errors.append("mounts remain under %s: %s" % (path, ", ".join(left)))
            return False
        return True

    def remove_tree(self, action: RemoveTree) -> None:
        if self._may_remove(action.path):
            safe_rmtree(Path(action.path))

    def remove_lab_dir(self, action: RemoveLabDir) -> None:
        if not self._may_remove(action.path):
            return
        recorded = self.state.inventory if self.state else None
        digest = self.state.inventory_sha256 if self.state else None
        for inventory in {recorded or "", str(paths.default_inventory(self.lab))} - {""}:
            if is_lab_inventory(Path(inventory), self.lab, digest):
                Path(inventory).unlink()
                with contextlib.suppress(OSError):
                    Path(inventory).parent.rmdir()  # only when empty
        safe_rmtree(Path(action.path))


def down(lab: str) -> list[str]:
    """Remove everything of ``lab``; return the errors (empty when all is gone)."""
    try:
        state = load_state(lab)
    except StateError as exc:
        progress(lab, "%s: removing what the scan of the host finds" % exc)
        state = None
    else:
        if state is None and paths.state_path(lab).exists():
            progress(lab, "state file %s is unreadable: scanning the host for the lab's resources" % paths.state_path(lab))
    return Executor(lab, state).run(plan_cleanup(lab, state, scan_host(lab)))


def remove_machine(state: LabState, name: str) -> None:
    """Stop and delete one machine of a running lab and forget it; LabError when something stays."""
    machine = state.machines[name]
    errors = Executor(state.lab, state).run(plan_machine_removal(machine, nspawn_pids(machine.root) if machine.root else []))
    if errors:
        raise LabError("; ".join(errors))
    del state.machines[name]
    save_state(state)
