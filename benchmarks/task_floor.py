# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's own floor on a lab: what a playbook, a task and a module cost the controller before any role logic.

    python benchmarks/task_floor.py                 # 3 nodes, 30 tasks per playbook, 3 rounds
    python benchmarks/task_floor.py --nodes 1 --tasks 50

Plays of generated playbooks on the lab's machines, interleaved round by round (medians per variant):

* ``one``: a single ``ansible.builtin.ping``: the fixed cost of starting ansible-playbook and reaching the nodes;
* ``remote``: N ``ansible.builtin.ping`` tasks (the cheapest module run on the node, with pipelining);
* ``local``: N ``ansible.builtin.debug`` tasks (an action that runs only on the controller);
* ``filter``: the same with one builtin filter in the message: each task's worker process loads Ansible's filter
  plugins again (the main process, whose memory the workers inherit, never templates with a filter);
* ``skipped``: N tasks whose ``when`` is false;
* ``modules``: N tasks, each a different read-only builtin module (stat, find, slurp, ...), against ``remote``
  with the same module N times: the price of each distinct module's AnsiballZ build (Ansible scans a module's
  imports once per run and module, not once per node).

Per task and node = (controller CPU of the variant - ``one``) / (N x nodes). These are the figures a converge
cannot go below with ansible-core; ``docs/benchmarks.md`` compares them with site.yml's budget. Results:
benchmarks/results/task-floor-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kfbench import labs, measure, procfs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / ".build" / "bench"
# read-only builtin modules that work on any node, each with harmless arguments
MODULES = [
    ("ansible.builtin.stat", "path: /etc/hostname"), ("ansible.builtin.slurp", "src: /etc/hostname"),
    ("ansible.builtin.find", "paths: /etc/systemd"), ("ansible.builtin.getent", "database: passwd\nkey: root"),
    ("ansible.builtin.file", "path: /etc/hostname\nstate: file"), ("ansible.builtin.service_facts", ""),
    ("ansible.builtin.command", "argv: [\"true\"]"), ("ansible.builtin.wait_for", "timeout: 0"),
    ("ansible.builtin.ping", "data: x"), ("ansible.builtin.setup", "gather_subset: ['!all', '!min']"),
]


def playbook(kind: str, count: int) -> str:
    lines = ["- name: Task floor, %s" % kind, "  hosts: all", "  gather_facts: false", "  tasks:"]
    for number in range(count if kind != "one" else 1):
        lines.append("    - name: Task %d" % number)
        if kind == "local":
            lines += ["      ansible.builtin.debug:", "        msg: task %d" % number]
        elif kind == "filter":
            lines += ["      ansible.builtin.debug:", "        msg: \"{{ inventory_hostname | to_json }} %d\"" % number]
        elif kind == "modules":
            module, arguments = MODULES[number % len(MODULES)]
            lines.append("      %s:" % module + ("" if arguments else " {}"))
            if arguments:
                lines += ["        " + line for line in arguments.split("\n")]
            lines.append("      changed_when: false")
        else:
            lines.append("      ansible.builtin.ping:")
            if kind == "skipped":
                lines.append("      when: false")
    return "\n".join(lines) + "\n"


def log(message: str) -> None:
    print("[task-floor %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=30, help="tasks per generated playbook (a multiple of 10 keeps 'modules' even)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep-labs", action="store_true")
    parser.add_argument("--distro", default="bookworm")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (network namespaces, systemd-nspawn)")
    signal.signal(signal.SIGTERM, measure.interrupt)
    date = datetime.date.today().isoformat()
    output = args.output or REPO / "benchmarks" / "results" / ("task-floor-%s.json" % date)
    kinds = ["one", "remote", "local", "filter", "skipped", "modules"]
    results = {"meta": {"date": date, "nodes": args.nodes, "tasks": args.tasks, "rounds": args.rounds, "cpus": os.cpu_count(),
                        "load_start": procfs.load_average()}, "variants": {kind: [] for kind in kinds}}
    lab = labs.lab_name(args.nodes, "floor")
    with tempfile.TemporaryDirectory(prefix="kf-floor-") as scratch, \
            labs.Labs(args.keep_labs, args.distro, BUILD / "inventories", log) as lab_set:
        inventory, seconds = lab_set.up(lab, args.nodes, 1, fresh=False)
        log("%s up in %.0f s" % (lab, seconds))
        books = {}
        for kind in kinds:
            books[kind] = Path(scratch) / ("%s.yml" % kind)
            books[kind].write_text(playbook(kind, args.tasks))
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                figures = measure.measure(measure.Run("noop", books[kind], inventory, BUILD / "logs" / ("%s-%s-%d.log" % (lab, kind, round_no)),
                                                      lab_netns_prefix=labs.netns_prefix(lab)))
                if figures["rc"] != 0:
                    log("%s failed (rc %d), see %s" % (kind, figures["rc"], figures["log"]))
                    return 1
                results["variants"][kind].append({key: figures[key] for key in ("wall", "controller_cpu", "controller_main_cpu", "lab_cpu")})
                log("round %d %-8s %6.1f s  controller CPU %5.2f s  lab CPU %5.2f s" % (round_no, kind, figures["wall"],
                                                                                        figures["controller_cpu"], figures["lab_cpu"]))
    report(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    print("results: %s" % output)
    return 0


def report(results: dict) -> dict:
    nodes, tasks = results["meta"]["nodes"], results["meta"]["tasks"]
    median = {kind: {key: statistics.median(run[key] for run in runs) for key in ("wall", "controller_cpu", "lab_cpu")}
              for kind, runs in results["variants"].items() if runs}
    base = median["one"]["controller_cpu"]
    floor = {"start_s": round(base, 2)}
    print("\nmedians of %d rounds, %d nodes, %d tasks per playbook" % (results["meta"]["rounds"], nodes, tasks))
    print("%-8s %8s %10s %9s %22s %18s" % ("variant", "wall s", "ctl CPU s", "lab CPU s", "ctl ms per task+node", "lab ms per task+node"))
    for kind, figures in median.items():
        per = "-" if kind == "one" else "%.1f" % (1000 * (figures["controller_cpu"] - base) / (tasks * nodes))
        # the controller-only variants run nothing on the nodes (their lab CPU is the machines' idle work)
        lab = "-" if kind in ("one", "local", "filter", "skipped") else "%.1f" % (1000 * (figures["lab_cpu"] - median["one"]["lab_cpu"]) / (tasks * nodes))
        print("%-8s %8.1f %10.2f %9.2f %22s %18s" % (kind, figures["wall"], figures["controller_cpu"], figures["lab_cpu"], per, lab))
        if kind != "one":
            floor["%s_ms_per_task_node" % kind] = float(per)
    if "modules" in median and "remote" in median:
        distinct = min(tasks, len(MODULES))
        floor["per_distinct_module_s"] = round((median["modules"]["controller_cpu"] - median["remote"]["controller_cpu"]) / distinct, 3)
        print("each distinct module adds about %.2f s of controller CPU per run (its AnsiballZ build; the modules differ "
              "in size, so this is an average over %d of them)" % (floor["per_distinct_module_s"], distinct))
    results["floor"] = floor
    return floor


if __name__ == "__main__":
    sys.exit(main())
