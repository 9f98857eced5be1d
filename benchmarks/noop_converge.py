# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cost of a no-op converge: wall time, controller CPU and tasks per node of playbooks/site.yml on a converged lab.

Every executed task costs controller CPU per node, and a no-op run is CPU-bound, so the figures to watch are the
ok/skipped counts per node and the controller's user+sys time. Run it on a lab that site.yml has converged
(``make lab``, or ``python tools/lab.py up --lab NAME --inventory FILE`` then one converge): the first run is
checked to change nothing. Target: well under 80 tasks per node for the whole site.yml.

    python benchmarks/noop_converge.py [--inventory inventories/lab/hosts.yml] [--runs 3] [--playbook playbooks/site.yml]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


def run_once(inventory, playbook):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory, playbook],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    recap = {m.group(1): dict(zip(("ok", "changed", "unreachable", "failed", "skipped"), map(int, m.groups()[1:])))
             for m in RECAP_RE.finditer(proc.stdout)}
    return proc, wall, cpu, recap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=str(REPO / "inventories" / "lab" / "hosts.yml"))
    parser.add_argument("--playbook", default="playbooks/site.yml")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(args.inventory).exists():
        print("noop_converge: skipped, no lab inventory at %s (run `make lab` first)" % args.inventory)
        return 0
    walls, cpus = [], []
    for number in range(1, args.runs + 1):
        proc, wall, cpu, recap = run_once(args.inventory, args.playbook)
        if proc.returncode != 0 or not recap:
            print(proc.stdout[-3000:] + proc.stderr[-2000:])
            print("noop_converge: ansible-playbook failed (rc %d)" % proc.returncode)
            return 1
        changed = {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}
        if changed:
            print("noop_converge: not a no-op, changed tasks per host %s: converge the lab first" % changed)
            return 1
        walls.append(wall)
        cpus.append(cpu)
        per_node = ", ".join("%d/%d" % pair for pair in sorted({(c["ok"], c["skipped"]) for c in recap.values()}))
        per_task_ms = 1000 * cpu / sum(c["ok"] for c in recap.values())
        print("run %d: %d nodes, wall %.1f s, controller CPU %.2f s (%.0f ms per executed task and node), "
              "ok/skipped per node %s" % (number, len(recap), wall, cpu, per_task_ms, per_node))
    print("median of %d: wall %.1f s, controller CPU %.2f s (load average now %.1f; other work on the machine inflates both)"
          % (args.runs, statistics.median(walls), statistics.median(cpus), os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
