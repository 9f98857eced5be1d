# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node-side helper module on its own: what it refuses to do (real files, a stand-in containerd)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from containerd_config_harness import fake_containerd
from module_harness import FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.modules import containerd_config_node

V2 = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "a"\n'


def helper(args, check_mode=False):
    kind, result = call_main(containerd_config_node.main, args, check_mode=check_mode)
    return dict(result, failed=True) if kind is FailJson else result


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    path.write_text(V2)
    return path


def test_inspect_reads_and_dumps_the_file(conf, tmp_path):
    binary = fake_containerd(tmp_path / "bin", version="containerd x 1.7.24")
    result = helper({"op": "inspect", "path": str(conf), "containerd_path": binary, "dump_current": True})
    assert result["content"] == V2 and result["sha256"] == hashlib.sha256(V2.encode()).hexdigest()
    assert result["version"]["stdout"].strip() == "containerd x 1.7.24"
    assert result["current_dump"]["stdout"] == V2 and result["default"] is None and result["changed"] is False


def test_dump_in_check_mode_writes_nothing_next_to_the_file(conf, tmp_path):
    binary = fake_containerd(tmp_path / "bin")
    result = helper({"op": "dump", "path": str(conf), "containerd_path": binary, "candidate": V2, "stage": True}, check_mode=True)
    assert result["rc"] == 0 and result["staged"] is None
    assert sorted(p.name for p in conf.parent.iterdir()) == ["config.toml"]


def test_dump_keeps_a_private_candidate_for_install(conf, tmp_path):
    binary = fake_containerd(tmp_path / "bin")
    result = helper({"op": "dump", "path": str(conf), "containerd_path": binary, "candidate": V2 + "# new\n", "stage": True})
    staged = Path(result["staged"])
    assert staged.parent == conf.parent and staged.name.startswith(".config.toml.kubeforge-") and (os.stat(staged).st_mode & 0o777) == 0o600
    installed = helper({"op": "install", "path": str(conf), "staged": str(staged), "staged_sha256": result["staged_sha256"],
                        "expected_sha256": hashlib.sha256(V2.encode()).hexdigest()})
    assert installed["changed"] and conf.read_text() == V2 + "# new\n" and not staged.exists()


def test_install_refuses_a_file_that_is_not_its_candidate(conf, tmp_path):
    other = tmp_path / "etc" / "passwd"
    other.write_text("root:x:0:0\n")
    result = helper({"op": "install", "path": str(conf), "staged": str(other), "staged_sha256": "x", "expected_sha256": ""})
    assert result["failed"] and "is not a candidate file" in result["msg"]
    assert other.read_text() == "root:x:0:0\n" and conf.read_text() == V2


def test_install_reports_a_concurrent_change_as_a_conflict(conf):
    result = helper({"op": "install", "path": str(conf), "content": "version = 2\n", "expected_sha256": "0" * 64})
    assert result["failed"] and result["conflict"] is True and conf.read_text() == V2


def test_install_never_runs_in_check_mode(conf):
    result = helper({"op": "install", "path": str(conf), "content": "version = 2\n", "expected_sha256": ""}, check_mode=True)
    assert result["failed"] and "check mode" in result["msg"] and conf.read_text() == V2


def test_a_path_that_exists_but_cannot_run_is_an_error(conf, tmp_path):
    not_executable = tmp_path / "containerd"
    not_executable.write_text("#!/bin/sh\n")
    result = helper({"op": "inspect", "path": str(conf), "containerd_path": str(not_executable)})
    assert result["failed"] and "is not an executable file" in result["msg"]


def test_relative_path_is_refused(conf):
    result = helper({"op": "inspect", "path": "etc/config.toml"})
    assert result["failed"] and "must be absolute" in result["msg"]
