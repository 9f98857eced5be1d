# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``up``: the order in which a lab is created, grown, shrunk or restarted. Idempotent: running
machines are kept (also one started by an earlier run killed before recording it)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .addressing import (assign_indexes, bridge_name, gateway_address, group_layout, lab_id, machine_address, netns_name,
                         pick_subnet, veth_name)
from .errors import UsageError
from .hostcmd import file_lock, progress, write_atomic
from .image import ensure_base
from .inventory import inventory_digest, render_inventory
from .machine import ensure_overlay, personalise, refresh_hosts, start_machine, wait_ready
from .network import ensure_machine_net, ensure_network, used_networks
from .process import nspawn_pids, pid_alive, pid_start_time
from .ssh import ensure_key
from .state import LabState, Machine, load_state, other_labs, save_state
from .teardown import down, remove_machine


@dataclass(frozen=True)
class UpRequest:
    lab: str
    names: list[str]
    distro: str
    control_planes: int
    inventory: Path
    timeout: float


def new_state(lab: str, distro: str, names: list[str], control_planes: int) -> LabState:
    """A fresh state with a free subnet, saved at once so that concurrent labs see the subnet taken."""
    with file_lock(paths.lock_path("subnet")):
        others = other_labs(lab)
        for other in others:
            if other.id == lab_id(lab):
                raise UsageError("lab %s would share the id %s (its interface names) with lab %s: use another --lab"
                                 % (lab, lab_id(lab), other.lab))
        subnet = str(pick_subnet(lab, used_networks(lab)))
        state = LabState(lab=lab, distro=distro, subnet=subnet, gateway=gateway_address(subnet), bridge=bridge_name(lab),
                         key=str(paths.lab_dir(lab) / "id_ed25519"), groups=group_layout(names, control_planes))
        paths.lab_dir(lab).mkdir(parents=True, exist_ok=True)
        os.chmod(paths.lab_dir(lab), 0o700)
        save_state(state)
    return state


def _load_or_create(request: UpRequest) -> LabState:
    lab = request.lab
    state = load_state(lab)  # StateError (a newer schema) stops here, before anything changes
    if state and state.machines and state.distro != request.distro:
        raise UsageError("lab %s has %s machines (%s); their overlays cannot move to %s: "
                         "run `python3 tools/lab.py down --lab %s` first, or use another --lab"
                         % (lab, state.distro, ",".join(sorted(state.machines)), request.distro, lab))
    if state is None or not state.subnet:
        if paths.state_path(lab).exists():
            progress(lab, "state file %s is unreadable: cleaning up what the lab left first" % paths.state_path(lab))
            down(lab)
        state = new_state(lab, request.distro, request.names, request.control_planes)
    return state


def _record_machines(state: LabState, names: list[str]) -> None:
    """Give every requested machine its index, address and resource names, and save them before use."""
    indexes = assign_indexes({name: m.index for name, m in state.machines.items()}, names)
    for name in names:
        machine = state.machines.setdefault(name, Machine(name=name))
        machine.index = indexes[name]
        machine.address = machine_address(state.subnet, machine.index)
        machine.netns = netns_name(state.lab, name)
        machine.veth = veth_name(state.lab, machine.index)
        machine.dir = str(paths.lab_dir(state.lab) / "machines" / name)
        machine.root = str(paths.lab_dir(state.lab) / "machines" / name / "root")
    save_state(state)


def _adopt(state: LabState, machine: Machine) -> None:
    """A machine started by an earlier run that was killed before it recorded the pid."""
    if pid_alive(machine.pid, machine.pid_start):
        return
    for pid in nspawn_pids(machine.root):
        machine.pid, machine.pid_start = pid, pid_start_time(pid)
        save_state(state)


def bring_up(request: UpRequest) -> None:
    lab, names = request.lab, request.names
    t_start = time.monotonic()
    paths.CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.lock_path(lab)):
        state = _load_or_create(request)
        state.distro = request.distro
        state.groups = group_layout(names, request.control_planes)
        for old in [name for name in state.machines if name not in names]:
            progress(lab, "removing machine %s (not requested any more)" % old)
            remove_machine(state, old)
        base = ensure_base(lab, request.distro)
        pubkey = ensure_key(state.key, lab)
        _record_machines(state, names)
        ensure_network(state)
        booting = []
        for name in names:
            machine = state.machines[name]
            _adopt(state, machine)
            if pid_alive(machine.pid, machine.pid_start):
                progress(lab, "%s: already running (pid %d, %s)" % (name, machine.pid, machine.address))
                continue
            ensure_machine_net(state, machine)
            ensure_overlay(machine, base)
            personalise(state, machine, pubkey)
            start_machine(state, machine)
            booting.append(name)
            progress(lab, "%s: booting %s (pid %d, %s)" % (name, request.distro, machine.pid, machine.address))
        for name in names:
            if name not in booting:
                refresh_hosts(state, state.machines[name])
        deadline = time.monotonic() + request.timeout
        for name in names:
            machine = state.machines[name]
            machine.systemd = wait_ready(state, machine, deadline)
            progress(lab, "%s: systemd %s, ssh ok (%.1f s since start)" % (name, machine.systemd, time.monotonic() - t_start))
        text = render_inventory(state)
        write_atomic(request.inventory, text)
        state.inventory, state.inventory_sha256 = str(request.inventory), inventory_digest(text)
        save_state(state)
    progress(lab, "up: %d machines in %.1f s; inventory %s" % (len(names), time.monotonic() - t_start, request.inventory))
    flag = paths.lab_flag(lab)
    progress(lab, "try: python3 tools/lab.py ssh%s %s; remove with: python3 tools/lab.py down%s" % (flag, names[0], flag))
