# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turning the converge benchmark's results into a table, a task profile, targets and a PNG."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BENCH_LIB = REPO / ".build" / "bench" / "lib"   # `make benchmarks` installs requirements-bench.txt there

HEADER = ("nodes", "run", "wall s", "ctl CPU s", "ctl main", "ctl/node", "lab CPU s", "host CPU s", "host/node",
          "exec/node", "ok", "chg", "skip", "ssh new/all", "peak MB", "load")


def _row(nodes, run) -> tuple:
    per_node = run.get("tasks_per_node") or {}

    def mean(key):
        return "%g" % per_node[key]["mean"] if key in per_node else "-"

    return (str(nodes), run["kind"] + ("" if run["rc"] == 0 else " rc=%s" % run["rc"]),
            "%.1f" % run["wall"], "%.1f" % run["controller_cpu"],
            "%.1f" % run["controller_main_cpu"] if run.get("controller_main_cpu") is not None else "-", "%.2f" % run["controller_cpu_per_node"],
            "%.1f" % run["lab_cpu"], "%.1f" % run["host_cpu"], "%.2f" % run["host_cpu_per_node"],
            mean("executed"), mean("ok"), mean("changed"), mean("skipped"),
            "%d/%d" % (run["ssh_connections"], run["ssh_invocations"]),
            "%.0f" % (run.get("peak_pss_mb") or 0), "%.1f" % run["load_before"][0])


def table(results: dict) -> str:
    rows = [HEADER]
    for entry in results["labs"]:
        rows.extend(_row(entry["nodes"], run) for run in entry["runs"] if run["kind"] != "warmup")
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(results: dict) -> str:
    """The same figures as a Markdown table (README, closing notes)."""
    rows = [HEADER, ("---",) * len(HEADER)]
    for entry in results["labs"]:
        rows.extend(_row(entry["nodes"], run) for run in entry["runs"] if run["kind"] != "warmup")
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def summary_markdown(results: dict) -> str:
    """One row per lab size, the figures the README shows (no-op CPU and tasks per node)."""
    lines = ["| nodes | first converge | no-op | `--check` | controller CPU per node, no-op | lab CPU per node, no-op "
             "| executed / skipped tasks per node | ssh connections | peak controller memory | load average |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for entry in results["labs"]:
        runs = {run["kind"]: run for run in entry["runs"]}
        noop = runs.get("noop")

        def wall(kind, runs=runs):
            run = runs.get(kind)
            return "%.1f s" % run["wall"] if run and run["rc"] == 0 else "-"

        loads = [run["load_before"][0] for run in entry["runs"]]
        if noop:
            tasks = noop["tasks_per_node"]
            lines.append("| %d | %s | %s | %s | %.2f s | %.2f s | %g / %g | %d | %.0f MB | %.0f-%.0f |" % (
                entry["nodes"], wall("first"), wall("noop"), wall("check"), noop["controller_cpu_per_node"], noop["lab_cpu_per_node"],
                tasks["executed"]["mean"], tasks["skipped"]["mean"], noop["ssh_connections"], noop["peak_pss_mb"] or 0, min(loads), max(loads)))
    return "\n".join(lines)


def costliest(runs: list[dict], top: int = 10) -> list[dict]:
    """The ``top`` tasks by summed per-host time over the given runs (same task = same name and path)."""
    merged: dict[tuple, dict] = {}
    for run in runs:
        for task in run.get("tasks", []):
            key = (task["name"], task["path"])
            entry = merged.setdefault(key, dict(task, wall=0.0, host_seconds=0.0, hosts=0))
            if entry is not task:
                entry["wall"] += task["wall"]
                entry["host_seconds"] += task["host_seconds"]
                entry["hosts"] += task["hosts"]
    ranked = sorted(merged.values(), key=lambda t: t["host_seconds"], reverse=True)
    return ranked[:top]


def profile_text(tasks: list[dict], title: str) -> str:
    lines = [title, "%9s %8s %5s  %s" % ("host-sec", "wall s", "hosts", "task  file:line")]
    for task in tasks:
        lines.append("%9.2f %8.2f %5d  %s  %s" % (task["host_seconds"], task["wall"], task["hosts"], task["name"], short_path(task["path"])))
    return "\n".join(lines)


def short_path(path: str) -> str:
    """roles/<role>/tasks/x.yml:N instead of the path through .build/collections."""
    for prefix in (str(REPO) + "/", ".build/collections/ansible_collections/kubeforge/cluster/"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    return path


def trim_tasks(run: dict, keep: int = 12) -> None:
    """Keep the JSON small: only the ``keep`` costliest tasks of a run are stored (the report shows ten)."""
    run["tasks"] = sorted(run.get("tasks", []), key=lambda t: t["host_seconds"], reverse=True)[:keep]
    for task in run["tasks"]:
        task["path"] = short_path(task["path"])
        task["wall"] = round(task["wall"], 3)
        task["host_seconds"] = round(task["host_seconds"], 3)


def targets(results: dict) -> list[str]:
    """The issue's targets, judged on these figures (3 and 12 nodes where measured)."""
    by_nodes = {entry["nodes"]: {run["kind"]: run for run in entry["runs"]} for entry in results["labs"]}
    lines = []
    noop3 = by_nodes.get(3, {}).get("noop")
    if noop3:
        executed = noop3["tasks_per_node"].get("executed", {}).get("max", 0)
        lines.append("no-op on 3 nodes: %.1f s (target <= 20 s), %d executed tasks on the busiest node (<= 80), "
                     "%.2f s controller CPU per node (<= 1 s)" % (noop3["wall"], executed, noop3["controller_cpu_per_node"]))
        noop12 = by_nodes.get(12, {}).get("noop")
        if noop12:
            lines.append("no-op on 12 nodes: %.1f s = %.2f x the 3-node time (target <= 2.5)" % (noop12["wall"], noop12["wall"] / noop3["wall"]))
    for nodes, runs in sorted(by_nodes.items()):
        check, noop = runs.get("check"), runs.get("noop")
        if check:
            changed = check["tasks_per_node"].get("changed", {}).get("max", 0)
            versus = " vs no-op %.1f s" % noop["wall"] if noop else ""
            lines.append("--check on the converged %d-node lab: changed=%d (target 0), %.1f s%s" % (nodes, changed, check["wall"], versus))
    return lines


def plot(results: dict, path: Path, before: dict | None = None) -> str | None:
    """Wall time and CPU against the number of nodes; ``before`` (an older results file) is drawn dashed."""
    if str(BENCH_LIB) not in sys.path and BENCH_LIB.is_dir():
        sys.path.append(str(BENCH_LIB))  # after the venv's own packages
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no PNG: matplotlib is not installed (`make benchmarks` installs requirements-bench.txt into %s)" % BENCH_LIB
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = [(results, "-", "")] + ([(before, "--", " (before)")] if before else [])
    colours = {"first": "tab:blue", "noop": "tab:green", "check": "tab:orange"}
    for data, style, suffix in series:
        for kind, colour in colours.items():
            points = _points(data, kind, "wall")
            if points:
                left.plot(*zip(*points), style, marker="o", color=colour, label="%s%s" % (kind, suffix))
        for key, colour, label, line in (("controller_cpu", "tab:green", "controller", style),
                                         ("lab_cpu", "tab:purple", "lab machines", style),
                                         ("host_cpu", "tab:gray", "whole host (with others' load)", ":")):
            points = _points(data, "noop", key)
            if points and (line != ":" or not suffix):
                right.plot(*zip(*points), line, marker="o", color=colour, label=label + suffix)
    left.set(title="%s wall time" % Path(results["meta"]["playbook"]).name, xlabel="nodes", ylabel="seconds", ylim=(0, None))
    right.set(title="CPU seconds of the no-op converge", xlabel="nodes", ylabel="CPU seconds", ylim=(0, None))
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
        axis.set_xticks(sorted({entry["nodes"] for entry in results["labs"]}))
    meta = results["meta"]
    loads = [run["load_before"][0] for entry in results["labs"] for run in entry["runs"]]
    fig.suptitle("%s, %d CPUs, 1-min load average %.0f-%.0f during the runs (%s)%s" % (
        meta["playbook"], meta["cpus"], min(loads), max(loads), meta["date"], "; dashed: %s" % before["meta"]["date"] if before else ""), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def _points(data: dict, kind: str, key: str) -> list[tuple]:
    points = []
    for entry in data.get("labs", []):
        for run in entry["runs"]:
            if run["kind"] == kind and run["rc"] == 0:
                points.append((entry["nodes"], run[key]))
    return sorted(points)
