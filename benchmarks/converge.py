# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converge benchmark: site.yml (or one stage) on labs of N machines, first converge, no-op re-run and
--check on the converged lab, with wall time, controller/lab/host CPU, tasks per node, ssh connections,
peak controller memory and the costliest tasks; then the in-process timings of the Python modules.

    python benchmarks/converge.py                       # N = 1, 3, 6, 12; site.yml
    python benchmarks/converge.py --nodes 1,3 --runs noop,check --stage containerd
    python benchmarks/converge.py --nodes 3 --runs noop --repeat 3 --strategy free --mitogen
    python benchmarks/converge.py --report benchmarks/results/converge-2026-12-01.json --compare OLD.json

Labs are named bench-<N> (tools/lab.py) and taken down at the end, on failure and on Ctrl-C. Results go
to benchmarks/results/converge-<date>[-<label>].json, the plot to docs/img/converge.png, each run's
Ansible output to .build/bench/logs/. Needs root (the lab). See docs/benchmarks.md.
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

from kfbench import labs, measure, modules, procfs, report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / ".build" / "bench"
RUN_KINDS = ("first", "noop", "check")


def log(message: str) -> None:
    print("[converge %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default=os.environ.get("BENCH_NODES") or "1,3,6,12", help="lab sizes, e.g. 1,3 (default 1,3,6,12)")
    parser.add_argument("--runs", default="first,noop,check", help="which runs, of first,noop,check (default all)")
    parser.add_argument("--repeat", type=int, default=1, help="repeat the no-op and check runs (the median is reported)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--playbook", default="playbooks/site.yml", help="playbook to converge (default playbooks/site.yml)")
    which.add_argument("--stage", help="one stage: playbooks/<STAGE>.yml")
    parser.add_argument("--strategy", help="ANSIBLE_STRATEGY for the runs (linear, free, host_pinned)")
    parser.add_argument("--mitogen", action="store_true", help="run under Mitogen for Ansible (mitogen_<strategy>)")
    parser.add_argument("--forks", type=int, help="ANSIBLE_FORKS (default: ansible.cfg)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for ansible-playbook")
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="NAME=VALUE",
                        help="extra variables for every run (make benchmarks passes the kubeadm test-double artifacts, as make lab)")
    parser.add_argument("--cfg", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="ansible.cfg setting for the runs (a generated copy of ansible.cfg), e.g. defaults.internal_poll_interval=0.01")
    parser.add_argument("--control-planes", default="auto", help="control-plane machines per lab (auto: 1 below 6 nodes, else 3)")
    parser.add_argument("--distro", default="bookworm")
    parser.add_argument("--keep-labs", action="store_true", help="leave the labs up (a later run without 'first' reuses them)")
    parser.add_argument("--converged", action="store_true",
                        help="without 'first': the kept labs are converged already, skip the unmeasured warm-up converge")
    parser.add_argument("--label", default="", help="added to the result file's name (e.g. before, after, mitogen)")
    parser.add_argument("--output", type=Path, help="result JSON (default benchmarks/results/converge-<date>[-<label>].json)")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "img" / "converge.png", help="plot (default docs/img/converge.png)")
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument("--compare", type=Path, help="an earlier result JSON, drawn dashed and profiled beside this one")
    parser.add_argument("--modules", choices=("yes", "no", "only"), default="yes", help="in-process module timings")
    parser.add_argument("--markdown", action="store_true", help="with --report: only the README's summary table")
    parser.add_argument("--report", type=Path, help="print the table, profile and plot of an existing result JSON, run nothing")
    args = parser.parse_args(argv)
    args.node_counts = sorted({int(n) for n in args.nodes.replace(" ", "").split(",") if n})
    args.run_kinds = [kind for kind in args.runs.split(",") if kind]
    unknown = set(args.run_kinds) - set(RUN_KINDS)
    if unknown or not args.run_kinds:
        parser.error("--runs takes first, noop, check (got %s)" % args.runs)
    if args.stage:
        args.playbook = "playbooks/%s.yml" % args.stage
    if not (REPO / args.playbook).is_file():
        parser.error("no playbook %s" % args.playbook)
    return args


def ansible_settings(args) -> dict:
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit("--env takes NAME=VALUE, got %r" % item)
        env[name] = value
    if args.cfg:
        overrides = {}
        for item in args.cfg:
            name, sep, value = item.partition("=")
            if not sep or "." not in name:
                raise SystemExit("--cfg takes SECTION.KEY=VALUE, got %r" % item)
            overrides[name] = value
        env["ANSIBLE_CONFIG"] = str(measure.ansible_cfg(overrides, BUILD / "cfg"))
    strategy = args.strategy or env.get("ANSIBLE_STRATEGY") or "linear"
    if args.forks:
        env["ANSIBLE_FORKS"] = str(args.forks)
    if args.mitogen:
        env.update(mitogen_env(strategy))
    elif args.strategy:
        env["ANSIBLE_STRATEGY"] = strategy
    return env


def mitogen_env(strategy: str) -> dict:
    """Mitogen's strategy plugins from .build/bench/mitogen (see `make bench-deps`); they import
    ansible_mitogen from the directory above them, so only mitogen lives there."""
    plugins = BUILD / "mitogen" / "ansible_mitogen" / "plugins" / "strategy"
    if not plugins.is_dir():
        raise SystemExit("--mitogen: %s is missing; run `make bench-deps` (installs requirements-bench.txt)" % plugins)
    # its one multiplexer bootstraps every host: on a loaded host that outlasts Ansible's 10 s connection timeout
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_" + strategy,
            "ANSIBLE_TIMEOUT": os.environ.get("ANSIBLE_TIMEOUT", "60")}


def bench_lab(args, lab_set, nodes, settings) -> dict:
    lab = labs.lab_name(nodes)
    planes = labs.control_planes(nodes, args.control_planes)
    fresh = "first" in args.run_kinds
    log("%s: up, %d machine(s), %d control plane(s)%s" % (lab, nodes, planes, ", fresh" if fresh else ""))
    inventory, up_seconds = lab_set.up(lab, nodes, planes, fresh)
    entry = {"nodes": nodes, "lab": lab, "control_planes": planes, "up_seconds": round(up_seconds, 1), "runs": []}
    log("%s: up in %.0f s" % (lab, up_seconds))
    kinds = list(args.run_kinds)
    if not fresh and not args.converged:
        kinds.insert(0, "warmup")  # a reused or new lab must be converged before a no-op means anything
    for kind in kinds:
        for attempt in range(1 if kind in ("first", "warmup") else args.repeat):
            run = measure.Run(kind=kind, playbook=REPO / args.playbook, inventory=inventory, check=kind == "check",
                              env=settings, lab_netns_prefix=labs.netns_prefix(lab), extra_vars=args.extra_vars,
                              log=BUILD / "logs" / ("%s-%s%s.log" % (lab, kind, "-%d" % attempt if attempt else "")))
            if run.log.exists():
                run.log.unlink()
            log("%s: %s%s ..." % (lab, kind, " (%d/%d)" % (attempt + 1, args.repeat) if args.repeat > 1 and kind in ("noop", "check") else ""))
            figures = measure.measure(run)
            entry["runs"].append(figures)
            per_node = figures["tasks_per_node"]
            log("%s: %s %.1f s, controller CPU %.1f s (%.2f s/node, main process %s s), lab CPU %.1f s, host CPU %.1f s, "
                "executed/node %s, changed %s, ssh %d new, rc %d" % (
                    lab, kind, figures["wall"], figures["controller_cpu"], figures["controller_cpu_per_node"],
                    figures.get("controller_main_cpu"), figures["lab_cpu"],
                    figures["host_cpu"], per_node.get("executed", {}).get("mean", "-"), per_node.get("changed", {}).get("max", "-"),
                    figures["ssh_connections"], figures["rc"]))
            if figures["rc"] != 0:
                log("%s: %s failed (rc %d); see %s" % (lab, kind, figures["rc"], run.log))
                if kind in ("first", "warmup"):
                    return entry
    return entry


def median_runs(entry: dict) -> dict:
    """Repeated no-op/check runs: keep every run in 'repeats', the median-wall one as the run of its kind."""
    runs, repeats = [], {}
    for run in entry["runs"]:
        repeats.setdefault(run["kind"], []).append(run)
    for group in repeats.values():
        if len(group) == 1:
            runs.append(group[0])
            continue
        ordered = sorted(group, key=lambda r: r["wall"])
        chosen = dict(ordered[(len(ordered) - 1) // 2])
        chosen["repeats"] = [{"wall": r["wall"], "controller_cpu": r["controller_cpu"], "lab_cpu": r["lab_cpu"],
                              "host_cpu": r["host_cpu"], "load_before": r["load_before"]} for r in group]
        chosen["wall_spread"] = [ordered[0]["wall"], ordered[-1]["wall"], round(statistics.median(r["wall"] for r in group), 2)]
        runs.append(chosen)
    entry["runs"] = runs
    return entry


def write_results(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def print_report(results: dict, args, before: dict | None) -> None:
    if results["labs"] and args.markdown:
        print(report.summary_markdown(results))
        return
    if results["labs"]:
        print("\n" + report.table(results))
        for line in report.targets(results):
            print("  " + line)
        biggest = max(results["labs"], key=lambda e: e["nodes"])
        for kind in ("noop", "first"):
            runs = [r for r in biggest["runs"] if r["kind"] == kind]
            if runs:
                print("\n" + report.profile_text(report.costliest(runs), "ten costliest tasks, %s on %d nodes:" % (kind, biggest["nodes"])))
        if before:
            old = [e for e in before.get("labs", []) if e["nodes"] == biggest["nodes"]]
            runs = [r for e in old for r in e["runs"] if r["kind"] == "noop"]
            if runs:
                print("\n" + report.profile_text(report.costliest(runs), "before (%s): ten costliest tasks, noop on %d nodes:"
                                                 % (before["meta"]["date"], biggest["nodes"])))
    if args.png and not args.no_png and results["labs"]:
        problem = report.plot(results, args.png, before)
        print("\n" + (problem or "plot: %s" % args.png))


def main(argv=None) -> int:
    args = parse_args(argv)
    before = json.loads(args.compare.read_text()) if args.compare else None
    if args.report:
        results = json.loads(args.report.read_text())
        print_report(results, args, before)
        return 0
    signal.signal(signal.SIGTERM, measure.interrupt)  # SIGTERM cleans up like Ctrl-C
    settings = ansible_settings(args)
    date = datetime.date.today().isoformat()
    output = args.output or REPO / "benchmarks" / "results" / ("converge-%s%s.json" % (date, "-" + args.label if args.label else ""))
    results = {"meta": {"date": date, "playbook": args.playbook, "extra_vars": args.extra_vars, "nodes": args.node_counts, "runs": args.run_kinds,
                        "repeat": args.repeat, "env": settings, "cpus": os.cpu_count(), "load_start": procfs.load_average(),
                        "distro": args.distro, "label": args.label, "argv": sys.argv[1:] if argv is None else argv},
               "labs": [], "modules": []}
    failed = False
    if args.modules != "only":
        if os.geteuid() != 0:
            raise SystemExit("the lab needs root (network namespaces, systemd-nspawn)")
        started = time.monotonic()
        log("%s on %s nodes, runs %s, settings %s; load average %s" % (
            args.playbook, ",".join(map(str, args.node_counts)), ",".join(args.run_kinds), settings or "ansible.cfg", results["meta"]["load_start"]))
        try:
            with labs.Labs(args.keep_labs, args.distro, BUILD / "inventories", log) as lab_set:
                for nodes in args.node_counts:
                    entry = median_runs(bench_lab(args, lab_set, nodes, settings))
                    for run in entry["runs"]:
                        report.trim_tasks(run)
                    failed = failed or any(run["rc"] != 0 for run in entry["runs"])
                    results["labs"].append(entry)
                    write_results(results, output)
                    if not args.keep_labs:
                        lab_set.down(entry["lab"])
        except KeyboardInterrupt:
            log("interrupted: labs taken down, partial results in %s" % output)
            failed = True
        except RuntimeError as exc:
            log("FAILED: %s" % exc)
            failed = True
        log("labs done in %.0f s" % (time.monotonic() - started))
    if args.modules != "no" and not (failed and not results["labs"]):
        log("in-process module timings")
        results["modules"] = modules.run_all(log=log)
    results["meta"]["load_end"] = procfs.load_average()
    write_results(results, output)
    print_report(results, args, before)
    print("results: %s" % output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
