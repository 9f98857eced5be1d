# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side levers on a converged lab: the same no-op converge under several Ansible settings
(strategy, forks, poll interval, output, module compression, fact cache, Mitogen), interleaved round
by round so that a shared machine's changing load hits every variant alike; medians per variant.

    python benchmarks/levers.py                            # 3 nodes, every variant, 3 rounds
    python benchmarks/levers.py --nodes 6 --rounds 5 --only baseline,free,mitogen
    python benchmarks/levers.py --variant 'poll-0.05:cfg:defaults.internal_poll_interval=0.05'

A variant is NAME:SETTING[,SETTING...] with SETTING = ENV_NAME=VALUE or cfg:SECTION.KEY=VALUE (a
generated copy of ansible.cfg). The lab is bench-<N>-levers, converged once before the rounds and
taken down at the end. Results: benchmarks/results/levers-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kfbench import labs, measure, procfs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / ".build" / "bench"
MITOGEN_STRATEGIES = BUILD / "mitogen" / "ansible_mitogen" / "plugins" / "strategy"

VARIANTS = [
    ("baseline", ""),  # ansible.cfg as committed
    ("poll-0.001", "cfg:defaults.internal_poll_interval=0.001"),  # Ansible's default (ansible.cfg has 0.01)
    ("poll-0.05", "cfg:defaults.internal_poll_interval=0.05"),
    ("forks-nodes", "ANSIBLE_FORKS={nodes}"),
    ("free", "ANSIBLE_STRATEGY=free"),
    ("host_pinned", "ANSIBLE_STRATEGY=host_pinned"),
    ("quiet-skips", "ANSIBLE_DISPLAY_SKIPPED_HOSTS=false,ANSIBLE_DISPLAY_OK_HOSTS=false"),
    ("zip-stored", "cfg:defaults.module_compression=ZIP_STORED"),
    ("fact-cache", "cfg:defaults.fact_caching=jsonfile,cfg:defaults.fact_caching_connection={build}/facts,cfg:defaults.gathering=smart"),
    ("no-pipelining", "ANSIBLE_PIPELINING=false"),
    # Mitogen bootstraps the hosts through one multiplexer process: on a loaded host that took longer than
    # Ansible's default 10 s connection timeout (hosts UNREACHABLE), so its variants allow 60 s
    ("mitogen", "ANSIBLE_STRATEGY_PLUGINS={mitogen},ANSIBLE_STRATEGY=mitogen_linear,ANSIBLE_TIMEOUT=60"),
    ("mitogen-free", "ANSIBLE_STRATEGY_PLUGINS={mitogen},ANSIBLE_STRATEGY=mitogen_free,ANSIBLE_TIMEOUT=60"),
]


def log(message: str) -> None:
    print("[levers %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def parse_variant(spec: str, nodes: int) -> tuple[str, dict]:
    """``NAME:SETTING,...`` -> (name, environment) with cfg: settings turned into an ANSIBLE_CONFIG file."""
    name, _colon, settings = spec.partition(":")
    env, cfg = {}, {}
    if settings:
        for item in settings.format(nodes=nodes, build=BUILD, mitogen=MITOGEN_STRATEGIES).split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit("variant %s: %r is not NAME=VALUE" % (name, item))
            if key.startswith("cfg:"):
                cfg[key[4:]] = value
            else:
                env[key] = value
    if cfg:
        env["ANSIBLE_CONFIG"] = str(measure.ansible_cfg(cfg, BUILD / "cfg"))
    return name, env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--playbook", default="playbooks/site.yml")
    parser.add_argument("--only", help="comma-separated variant names to run (default: all)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:SETTINGS", help="an extra variant")
    parser.add_argument("--keep-labs", action="store_true", help="leave bench-<N>-levers up (and reuse it next time)")
    parser.add_argument("--distro", default="bookworm")
    parser.add_argument("--lab-suffix", default="levers", help="the lab is bench-<N>-<suffix> (two runs side by side need two)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (network namespaces, systemd-nspawn)")
    specs = ["%s:%s" % pair for pair in VARIANTS] + args.variant
    wanted = set(args.only.split(",")) if args.only else None
    variants = [parse_variant(spec, args.nodes) for spec in specs if not wanted or spec.split(":", 1)[0] in wanted]
    if not MITOGEN_STRATEGIES.is_dir():
        skipped = [name for name, env in variants if "ANSIBLE_STRATEGY_PLUGINS" in env]
        variants = [(name, env) for name, env in variants if name not in skipped]
        if skipped:
            log("skipping %s: run `make bench-deps` for Mitogen" % ", ".join(skipped))
    signal.signal(signal.SIGTERM, measure.interrupt)  # SIGTERM cleans up like Ctrl-C
    date = datetime.date.today().isoformat()
    output = args.output or REPO / "benchmarks" / "results" / ("levers-%s%s.json" % (date, "" if args.lab_suffix == "levers" else "-" + args.lab_suffix))
    results = {"meta": {"date": date, "nodes": args.nodes, "rounds": args.rounds, "playbook": args.playbook,
                        "cpus": os.cpu_count(), "load_start": procfs.load_average()},
               "variants": {name: {"env": env, "runs": []} for name, env in variants}}
    lab = labs.lab_name(args.nodes, args.lab_suffix)
    status = 0
    try:
        with labs.Labs(args.keep_labs, args.distro, BUILD / "inventories", log) as lab_set:
            inventory, seconds = lab_set.up(lab, args.nodes, labs.control_planes(args.nodes, "auto"), fresh=False)
            log("%s up in %.0f s; converging it once" % (lab, seconds))
            warm = measure.measure(measure.Run("warmup", REPO / args.playbook, inventory, BUILD / "logs" / ("%s-warmup.log" % lab)))
            if warm["rc"] != 0:
                raise RuntimeError("the warm-up converge failed; see %s" % warm["log"])
            for round_no in range(1, args.rounds + 1):
                # each round starts one variant later, so that a load that grows or falls during a round does
                # not always favour the same variants
                shift = (round_no - 1) % len(variants)
                for name, env in variants[shift:] + variants[:shift]:
                    run = measure.Run("noop", REPO / args.playbook, inventory, BUILD / "logs" / ("%s-%s-%d.log" % (lab, name, round_no)),
                                      env=env, lab_netns_prefix=labs.netns_prefix(lab))
                    figures = measure.measure(run)
                    figures.pop("tasks")
                    figures["round"] = round_no
                    results["variants"][name]["runs"].append(figures)
                    changed = figures["tasks_per_node"].get("changed", {}).get("max", "-")
                    log("round %d %-14s %6.1f s  controller CPU %5.1f s  lab CPU %5.1f s  changed %s  ssh %d new  rc %d  load %.1f"
                        % (round_no, name, figures["wall"], figures["controller_cpu"], figures["lab_cpu"], changed,
                           figures["ssh_connections"], figures["rc"], figures["load_before"][0]))
                with open(output, "w", encoding="utf-8") as handle:
                    json.dump(results, handle, indent=1)
    except KeyboardInterrupt:
        log("interrupted")
        status = 1
    except RuntimeError as exc:
        log("FAILED: %s" % exc)
        status = 1
    print_table(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    print("results: %s" % output)
    return status


def print_table(results: dict) -> None:
    """Medians per variant, and the median over rounds of each run's controller CPU divided by the same
    round's baseline run (a paired figure, steadier than the medians when the host's load drifts)."""
    baseline = {run["round"]: run for run in results["variants"].get("baseline", {}).get("runs", []) if run["rc"] == 0 and "round" in run}
    nodes = results["meta"]["nodes"]
    print("\nno-op %s on %d nodes, median of %d rounds (load at start %s)" % (
        results["meta"]["playbook"], nodes, results["meta"]["rounds"], results["meta"]["load_start"]))
    print("%-14s %5s %8s %10s %9s %9s %13s %7s %5s %9s" % ("variant", "runs", "wall s", "ctl CPU s", "ctl main", "ctl/node", "CPU vs base",
                                                           "lab s", "ssh", "load"))
    for name, data in results["variants"].items():
        ok = [r for r in data["runs"] if r["rc"] == 0]
        if not ok:
            print("%-14s failed in all %d runs (rc %s; see the logs in .build/bench/logs)" % (name, len(data["runs"]), sorted({r["rc"] for r in data["runs"]})))
            continue
        paired = [r["controller_cpu"] / baseline[r["round"]]["controller_cpu"] - 1 for r in ok if r.get("round") in baseline]
        cpu = statistics.median(r["controller_cpu"] for r in ok)
        loads = [r["load_before"][0] for r in ok]
        mains = [r["controller_main_cpu"] for r in ok if r.get("controller_main_cpu") is not None]
        print("%-14s %5d %8.1f %10.1f %9s %9.2f %13s %7.1f %5d %9s" % (
            name, len(ok), statistics.median(r["wall"] for r in ok), cpu, "%.1f" % statistics.median(mains) if mains else "-", cpu / nodes,
            "%+.0f%%" % (100 * statistics.median(paired)) if paired and name != "baseline" else "-",
            statistics.median(r["lab_cpu"] for r in ok), statistics.median(r["ssh_connections"] for r in ok),
            "%.0f-%.0f" % (min(loads), max(loads))))


if __name__ == "__main__":
    sys.exit(main())
