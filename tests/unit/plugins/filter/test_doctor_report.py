# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's inventory table and its cross-node check (clock skew from the action plugin's timing)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.doctor_report import FilterModule, doctor_report

PASS = {"name": "swap", "status": "pass", "cause": "", "fix": "", "evidence": "no active swap (/proc/swaps)"}
FAIL = {"name": "cri_dockerd_cni", "status": "fail", "cause": "cri-dockerd (pid 400) runs with no --network-plugin",
        "fix": "add --network-plugin=cni to cri-dockerd's ExecStart and restart it", "evidence": ""}


def result(rows, offset=0.0, uncertainty=0.1):
    return {"checks": rows, "clock_offset": offset, "clock_uncertainty": uncertainty, "changed": False}


def test_table_rows_counts_and_failures():
    hostvars = {"node1": {"doctor": result([PASS])}, "node2": {"doctor": result([PASS, FAIL])}}
    report = doctor_report(hostvars, ["node1", "node2"], "doctor")
    assert report["failed"] is True
    assert report["failures"] == [{"host": "node2", "check": "cri_dockerd_cni", "cause": FAIL["cause"], "fix": FAIL["fix"]}]
    assert report["counts"] == {"pass": 4, "warn": 0, "fail": 1, "skip": 0}
    assert report["lines"][0].split() == ["node", "check", "status", "cause", "/", "fix", "/", "evidence"]
    assert "node2  cri_dockerd_cni  FAIL    cri-dockerd (pid 400) runs with no --network-plugin" in report["lines"]
    fix_line = report["lines"][report["lines"].index("node2  cri_dockerd_cni  FAIL    cri-dockerd (pid 400) runs with no --network-plugin") + 1]
    assert fix_line.strip() == "fix: add --network-plugin=cni to cri-dockerd's ExecStart and restart it"
    assert fix_line.index("fix:") == report["lines"][1].index("no active swap")  # continuation lines align with the details column
    assert report["lines"][-1] == "4 pass, 0 warn, 1 fail, 0 skip on 2 nodes"


def test_clock_skew_is_judged_on_its_lower_bound():
    hosts = ["node1", "node2", "node3"]
    close = {"node1": {"d": result([], 0.0, 0.4)}, "node2": {"d": result([], 1.2, 0.4)}, "node3": {"d": result([], 0.3, 0.4)}}
    report = doctor_report(close, hosts, "d", max_clock_skew=1.0)
    assert report["clock"]["skew_lower_bound"] == pytest.approx(0.4) and not report["failed"]  # 1.2 apart, 0.8 uncertain
    far = dict(close, node2={"d": result([], 3.0, 0.4)})
    report = doctor_report(far, hosts, "d", max_clock_skew=1.0)
    assert report["failed"] and sorted(f["host"] for f in report["failures"]) == ["node1", "node2"]
    assert report["failures"][0]["cause"].startswith("clocks of node1 and node2 differ by at least 2.2 s (more than 1.0 s)")


def test_a_host_without_a_result_is_a_failed_row():
    report = doctor_report({"node1": {"d": result([PASS])}, "node2": {"d": {"failed": True, "msg": "ssh: connect refused"}}},
                           ["node1", "node2", "node3"], "d")
    assert [(f["host"], f["check"]) for f in report["failures"]] == [("node2", "doctor"), ("node3", "doctor")]
    assert report["failures"][0]["cause"] == "the doctor did not run: ssh: connect refused"


def test_bad_arguments_and_registration():
    with pytest.raises(AnsibleFilterError, match="hosts must be a list"):
        doctor_report({}, "node1")
    with pytest.raises(AnsibleFilterError, match="hosts must be a list"):
        FilterModule().filters()["doctor_report"]({}, "node1")
