# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's table for a whole inventory, and the checks that need several nodes (clock skew).

``hostvars | kubeforge.cluster.doctor_report(hosts, 'kubeadm_doctor', max_clock_skew=1.0)`` reads each host's
registered ``node_doctor`` result and returns ``{"lines": [...], "text": one string, "failed": bool, "failures": [...], "counts": {...},
"clock": {...}}``. Clock skew: each result carries the node's clock offset from the controller and its
uncertainty (``node_doctor``'s action plugin); the skew of two nodes is at least
``|offset_a - offset_b| - (uncertainty_a + uncertainty_b)``, and only that lower bound is compared with
``max_clock_skew``, so a slow connection never reports a skew that is not there.
"""

from __future__ import annotations

import textwrap

from ansible.errors import AnsibleFilterError

WIDTH = 110
STATUS_TEXT = {"pass": "pass", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def _clock_rows(results, max_skew):
    timed = {host: r for host, r in results.items() if isinstance(r.get("clock_offset"), (int, float))}
    if len(timed) < 2:
        return {}, {"skew_lower_bound": None, "max_clock_skew": max_skew}
    ordered = sorted(timed, key=lambda h: timed[h]["clock_offset"])
    low, high = ordered[0], ordered[-1]
    spread = timed[high]["clock_offset"] - timed[low]["clock_offset"]
    bound = max(0.0, spread - timed[high].get("clock_uncertainty", 0) - timed[low].get("clock_uncertainty", 0))
    clock = {"skew_lower_bound": round(bound, 3), "max_clock_skew": max_skew,
             "offsets": {h: timed[h]["clock_offset"] for h in ordered}}
    rows = {}
    for host in ordered:
        offset = timed[host]["clock_offset"]
        evidence = "offset %+.3f s (+/- %.3f s) from the controller" % (offset, timed[host].get("clock_uncertainty", 0))
        if bound > max_skew and host in (low, high):
            other = high if host == low else low
            rows[host] = {"name": "clock_skew", "status": "fail",
                          "cause": "clocks of %s and %s differ by at least %.1f s (more than %.1f s): certificates look not yet valid or "
                                   "expired and etcd members complain (\"the clock difference against peer ... is too high\")" % (
                                       host, other, bound, max_skew),
                          "fix": "synchronise the clocks (systemd-timesyncd or chrony; kubeforge.cluster.node_prep sets it up)",
                          "evidence": evidence}
        else:
            rows[host] = {"name": "clock_skew", "status": "pass", "cause": "", "fix": "", "evidence": evidence}
    return rows, clock


def _wrap(text, indent):
    return textwrap.wrap(text, WIDTH - indent, break_long_words=False, break_on_hyphens=False) or [""]


def doctor_report(hostvars, hosts, var_name="kubeadm_doctor", max_clock_skew=1.0):
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError("doctor_report: hosts must be a list of inventory host names, got %r" % (hosts,))
    results = {}
    rows = []
    for host in hosts:
        result = (hostvars.get(host) or {}).get(var_name)
        if not isinstance(result, dict) or result.get("failed") or result.get("unreachable") or "checks" not in result:
            why = (result or {}).get("msg") if isinstance(result, dict) else None
            rows.append((host, {"name": "doctor", "status": "fail", "cause": "the doctor did not run: %s" % (why or "no result (unreachable?)"),
                                "fix": "make the host reachable and run the play again", "evidence": ""}))
            continue
        results[host] = result
        rows.extend((host, row) for row in result["checks"])
    clock_rows, clock = _clock_rows(results, float(max_clock_skew))
    rows.extend((host, clock_rows[host]) for host in hosts if host in clock_rows)
    order = {host: index for index, host in enumerate(hosts)}
    rows.sort(key=lambda item: order.get(item[0], len(order)))

    host_width = max([len("node")] + [len(host) for host, _row in rows])
    check_width = max([len("check")] + [len(row["name"]) for _host, row in rows])
    indent = host_width + 2 + check_width + 2 + 6 + 2
    lines = ["%-*s  %-*s  %-6s  %s" % (host_width, "node", check_width, "check", "status", "cause / fix / evidence")]
    counts = {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
    failures = []
    for host, row in rows:
        status = row["status"]
        counts[status] = counts.get(status, 0) + 1
        details = []
        if status in ("fail", "warn"):
            details += _wrap(row.get("cause", ""), indent)
            fix = _wrap(row.get("fix", ""), indent + 5)
            details += ["fix: " + fix[0]] + ["     " + line for line in fix[1:]]
            if status == "fail":
                failures.append({"host": host, "check": row["name"], "cause": row.get("cause", ""), "fix": row.get("fix", "")})
        else:
            details += _wrap(row.get("evidence", ""), indent)
        lines.append("%-*s  %-*s  %-6s  %s" % (host_width, host, check_width, row["name"], STATUS_TEXT.get(status, status), details[0]))
        lines.extend(" " * indent + line for line in details[1:])
    lines.append("%d pass, %d warn, %d fail, %d skip on %d nodes" % (counts["pass"], counts["warn"], counts["fail"], counts["skip"], len(hosts)))
    return {"lines": lines, "text": "\n".join(lines), "failed": bool(failures), "failures": failures, "counts": counts, "clock": clock}
