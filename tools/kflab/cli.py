# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of ``tools/lab.py``: up, down, status, ssh, instances, summary (and the internal
``_boot`` supervisor). Errors are printed with how to clean up; nothing here knows how things are done."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import lab_summary  # tools/lab_summary.py, beside this package

from . import paths
from .addressing import group_layout, machine_names, validate_lab_name
from .errors import LabError, UsageError
from .hostcmd import file_lock, progress, require_root, require_tools
from .image import DISTROS
from .inventory import instance_config
from .machine import supervise, systemd_state
from .process import pid_alive
from .ssh import ssh_argv
from .state import require_state
from .teardown import down
from .up import UpRequest, bring_up

DESCRIPTION = "The kubeforge lab: real Debian machines with systemd as PID 1, booted with systemd-nspawn."


def cmd_up(args) -> int:
    require_root()
    lab = validate_lab_name(args.lab)
    names = machine_names(args.machines, args.names.split(",") if args.names else None)
    group_layout(names, args.control_planes)  # refuse a bad --control-planes before anything is done
    require_tools()
    inventory = (Path(args.inventory) if args.inventory else paths.default_inventory(lab)).resolve()
    bring_up(UpRequest(lab=lab, names=names, distro=args.distro, control_planes=args.control_planes,
                       inventory=inventory, timeout=args.timeout))
    return 0


def cmd_down(args) -> int:
    require_root()
    lab = validate_lab_name(args.lab)
    started = time.monotonic()
    paths.CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.lock_path(lab)):
        errors = down(lab)
    if errors:
        raise LabError("down left resources behind:\n  %s\nfix the cause and run `python3 tools/lab.py down --lab %s` again"
                       % ("\n  ".join(errors), lab))
    progress(lab, "down: everything removed in %.1f s" % (time.monotonic() - started))
    return 0


def cmd_status(args) -> int:
    lab = validate_lab_name(args.lab)
    state = require_state(lab)
    print("lab %s: %s, subnet %s, bridge %s, inventory %s" % (lab, state.distro, state.subnet, state.bridge, state.inventory))
    print("%-12s %-15s %-8s %-6s %s" % ("MACHINE", "ADDRESS", "PID", "ALIVE", "SYSTEMD"))
    for machine in state.ordered():
        alive = pid_alive(machine.pid, machine.pid_start)
        systemd = "-"
        if alive:
            systemd, proc = systemd_state(state, machine)
            systemd = systemd or ("ssh failed: %s" % proc.stderr.strip())
        print("%-12s %-15s %-8s %-6s %s" % (machine.name, machine.address, machine.pid or "-", "yes" if alive else "no", systemd))
    return 0


def cmd_ssh(args) -> int:
    lab = validate_lab_name(args.lab)
    state = require_state(lab)
    if args.name not in state.machines:
        raise LabError("no machine %s in lab %s (machines: %s)" % (args.name, lab, ", ".join(sorted(state.machines))))
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    argv = ssh_argv(state.machines[args.name].address, state.key, command, tty=sys.stdin.isatty() and not command)
    os.execvp("ssh", argv)
    return 0  # not reached


def cmd_instances(args) -> int:
    lab = validate_lab_name(args.lab)
    print(json.dumps(instance_config(require_state(lab)), indent=2))
    return 0


def cmd_boot(args) -> int:
    state = require_state(validate_lab_name(args.lab))
    if args.name not in state.machines:
        raise LabError("no machine %s in lab %s" % (args.name, args.lab))
    return supervise(state.machines[args.name])


def cmd_summary(args) -> int:
    """``lab.py summary`` (what the Makefile calls) is tools/lab_summary.py, a tool of its own."""
    return lab_summary.main(["--inventory", args.inventory])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab.py", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="action", required=True, metavar="{up,down,status,ssh,instances,summary}")
    up = sub.add_parser("up", help="bring the lab up (idempotent: running machines are kept)")
    up.add_argument("--machines", type=int, default=None, help="number of machines (default 3, or the number of --names)")
    up.add_argument("--names", help="comma-separated machine names (default node1..nodeN)")
    up.add_argument("--distro", choices=DISTROS, default="bookworm")
    up.add_argument("--lab", default=paths.DEFAULT_LAB)
    up.add_argument("--inventory", help="where to write the Ansible inventory (default inventories/<lab>/hosts.yml)")
    up.add_argument("--control-planes", type=int, default=1, help="how many machines form the control plane (default 1)")
    up.add_argument("--timeout", type=int, default=300, help="seconds to wait for the machines to boot (default 300)")
    down_p = sub.add_parser("down", help="remove every machine, namespace, veth, bridge and NAT rule of the lab")
    down_p.add_argument("--lab", default=paths.DEFAULT_LAB)
    status = sub.add_parser("status", help="machines, pids, addresses and systemd state")
    status.add_argument("--lab", default=paths.DEFAULT_LAB)
    ssh_p = sub.add_parser("ssh", help="ssh into a machine: ssh NAME [-- command]")
    ssh_p.add_argument("--lab", default=paths.DEFAULT_LAB)
    ssh_p.add_argument("name")
    ssh_p.add_argument("command", nargs=argparse.REMAINDER)
    boot = sub.add_parser("_boot")  # internal: the supervisor of one machine, started by `up`
    boot.add_argument("--lab", default=paths.DEFAULT_LAB)
    boot.add_argument("name")
    instances = sub.add_parser("instances", help="the machines as molecule's instance config (JSON)")
    instances.add_argument("--lab", default=paths.DEFAULT_LAB)
    summary = sub.add_parser("summary", help="what each node of an inventory runs (tools/lab_summary.py)")
    summary.add_argument("--inventory", required=True)
    return parser


HANDLERS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "ssh": cmd_ssh, "instances": cmd_instances,
            "_boot": cmd_boot, "summary": cmd_summary}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "up" and args.machines is None:
        args.machines = 0 if args.names else 3
    lab = getattr(args, "lab", paths.DEFAULT_LAB)
    cleanup_hint = "lab.py: to remove what was created: python3 tools/lab.py down --lab %s" % lab
    try:
        return HANDLERS[args.action](args)
    except LabError as exc:
        print("lab.py %s: error: %s" % (args.action, exc), file=sys.stderr)
        if args.action == "up" and not isinstance(exc, UsageError):
            print(cleanup_hint, file=sys.stderr)
        return 1
    except OSError as exc:
        print("lab.py %s: error: %s" % (args.action, exc), file=sys.stderr)
        if args.action in ("up", "down"):
            print(cleanup_hint, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab.py %s: interrupted; clean up with: python3 tools/lab.py down --lab %s" % (args.action, lab), file=sys.stderr)
        return 130
