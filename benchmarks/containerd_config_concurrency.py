# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two concurrent containerd_config runs on one config.toml, N rounds: is any change lost?

Each round starts two ansible-playbook processes against localhost at the same moment; each runs the
kubeforge.cluster.containerd_config task ``--tasks`` times, adding a runtime of its own each time, on one
version 2 config.toml, judged by the real containerd 1.6 (Debian bookworm, fetched by tools/debfetch.py).
Afterwards every runtime a task reported as added must be in the file; a task may instead fail, saying the
file kept changing. Prints per-round lines and the totals: changes made, tasks that read and merged again
because the other writer changed the file in between, failures (with their reason) and lost changes (must be 0).

    python benchmarks/containerd_config_concurrency.py [--rounds 50] [--tasks 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tools"), str(REPO / ".build" / "collections")]

import debfetch  # noqa: E402
from containerd_config_play import writers_round  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    try:
        binary = str(Path(debfetch.fetch("containerd", "bookworm")) / "usr" / "bin" / "containerd")
    except debfetch.DebFetchError as exc:
        print("containerd 1.6 cannot be fetched here (%s): nothing measured" % exc)
        return 0
    base = (REPO / "tests" / "integration" / "fixtures" / "containerd" / "v2-default-1.7.toml").read_text()
    totals = {"changed": 0, "retried": 0, "failed": [], "lost": []}
    seconds = []
    with tempfile.TemporaryDirectory(prefix="kf-concurrency-") as tmp:
        conf = Path(tmp) / "etc" / "containerd" / "config.toml"
        conf.parent.mkdir(parents=True)
        for round_no in range(args.rounds):
            summary = writers_round(tmp, binary, conf, base, round_no, tasks=args.tasks)
            seconds.append(summary["seconds"])
            for key in ("changed", "retried"):
                totals[key] += summary[key]
            totals["failed"] += summary["failed"]
            totals["lost"] += summary["lost"]
            print("round %2d: %4.1f s, %d changed, %d merged again, %d failed, %d lost"
                  % (round_no + 1, summary["seconds"], summary["changed"], summary["retried"], len(summary["failed"]), len(summary["lost"])),
                  flush=True)
    print("%d rounds x 2 writers x %d tasks: %d changes made, %d read-and-merged-again after a concurrent write, "
          "%d failed saying why, %d lost (median round %.1f s; host load from other work inflates timings)"
          % (args.rounds, args.tasks, totals["changed"], totals["retried"], len(totals["failed"]), len(totals["lost"]),
             statistics.median(seconds)))
    for failure in sorted({f.split(": ", 1)[1] for f in totals["failed"]}):
        print("  failure: %s" % failure)
    return 1 if totals["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
