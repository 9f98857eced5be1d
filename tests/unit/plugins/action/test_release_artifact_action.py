# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""release_artifact from a local artifacts directory: the action plugin with the real node module run in-process.

The connection is faked; the node is this process with its files under tmp_path. Every transfer and every
module call is recorded, so the tests see what a converged node costs (one module call, no transfer).
"""

from __future__ import annotations

import os
import shutil
import stat
from unittest.mock import MagicMock

import pytest
from artifact_builder import make_tarball, sha256, write_sums
from module_harness import FailJson, call_main, patch_module_exits
from ansible_collections.kubeforge.cluster.plugins.action import release_artifact as action_plugin
from ansible_collections.kubeforge.cluster.plugins.action.release_artifact import ActionModule
from ansible_collections.kubeforge.cluster.plugins.modules import release_artifact

CRICTL = b"#!crictl v1.36.0\n" * 1000
DOCKERD = b"#!cri-dockerd v0.4.3\n" * 1000
TARBALL = "cri-tools-v1.36.0-linux-amd64.tar.gz"


class FakeShell:
    def __init__(self):
        self.tmpdir = None

    @staticmethod
    def join_path(*parts):
        return os.path.join(*parts)


class Node:
    """The managed node: this process, files under tmp_path."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.transfers = []
        self.calls = []
        self.corrupt_transfer = False
        self.task = None

    def execute_module(self, module_name=None, module_args=None, task_vars=None, wrap_async=False):
        assert module_name == "kubeforge.cluster.release_artifact"
        self.calls.append(dict(module_args))
        args = dict(module_args, _ansible_remote_tmp=str(self.tmp_path / "remote-tmp"))
        kind, result = call_main(release_artifact.main, args, check_mode=self.task.check_mode, diff=self.task.diff)
        if kind is FailJson:
            result["failed"] = True
        return result

    def transfer_file(self, local, remote):
        self.transfers.append(os.path.basename(local))
        shutil.copy(local, remote)
        if self.corrupt_transfer:
            with open(remote, "ab") as handle:
                handle.write(b"\0")
        return remote

    def make_tmp(self, action):
        path = self.tmp_path / "ansible-tmp"
        path.mkdir(exist_ok=True)
        action._connection._shell.tmpdir = str(path)
        return str(path)


@pytest.fixture
def node(tmp_path, monkeypatch):
    patch_module_exits(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "controller-cache"))
    return Node(tmp_path)


def run(node, args, check_mode=False, diff=False):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = 0
    task.action = "kubeforge.cluster.release_artifact"
    connection = MagicMock()
    connection._shell = FakeShell()
    action = ActionModule(task, connection, MagicMock(), MagicMock(), MagicMock(), None)
    action._execute_module = node.execute_module
    action._transfer_file = node.transfer_file
    action._make_tmp_path = lambda remote_user=None: node.make_tmp(action)
    action._fixup_perms2 = MagicMock(return_value=None)
    action._find_needle = MagicMock(side_effect=AssertionError("absolute paths are used as they are"))
    node.task = task
    node.calls.clear()
    node.transfers.clear()
    return action.run(task_vars={})


@pytest.fixture
def artifacts(tmp_path):
    directory = tmp_path / "artifacts"
    directory.mkdir()
    make_tarball(directory / TARBALL, {"cri-tools/crictl": CRICTL, "cri-tools/cri-dockerd": (DOCKERD, 0o775), "cri-tools/LICENSE": (b"L", 0o644)},
                 directories=["cri-tools"])
    (directory / "runc.amd64").write_bytes(b"runc binary")
    write_sums(directory, TARBALL, "runc.amd64")
    return directory


def tar_args(tmp_path, artifacts, **kwargs):
    args = {"src": str(artifacts / TARBALL), "checksum_file": str(artifacts / "SHA256SUMS"), "strip_components": 1,
            "members": ["crictl", "cri-dockerd"], "dest": str(tmp_path / "usr" / "local" / "bin"), "variable": "crictl_artifacts_dir",
            "owner": str(os.getuid()), "group": str(os.getgid())}
    args.update(kwargs)
    return args


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_check_then_install_then_converged_run_transfers_nothing(node, tmp_path, artifacts):
    bin_dir = tmp_path / "usr" / "local" / "bin"
    result = run(node, tar_args(tmp_path, artifacts), check_mode=True, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["transferred"] is False
    assert result["installed"] == [str(bin_dir / "cri-dockerd"), str(bin_dir / "crictl")]
    assert result["reasons"] == ["%s: not installed" % (bin_dir / "cri-dockerd"), "%s: not installed" % (bin_dir / "crictl")]
    assert "%s sha256:%s mode 0755" % (bin_dir / "crictl", sha256(CRICTL)) in result["diff"]["after"]
    assert node.transfers == [] and not bin_dir.exists()

    result = run(node, tar_args(tmp_path, artifacts))
    assert not result.get("failed"), result
    assert (result["changed"], result["transferred"]) == (True, True)
    assert node.transfers == [TARBALL] and [c["compare_only"] for c in node.calls] == [True, False]
    assert (bin_dir / "crictl").read_bytes() == CRICTL and (bin_dir / "cri-dockerd").read_bytes() == DOCKERD
    assert mode(bin_dir / "crictl") == 0o755 and mode(bin_dir / "cri-dockerd") == 0o755
    assert not (bin_dir / "LICENSE").exists()
    assert result["checksum"] == sha256((artifacts / TARBALL).read_bytes())
    assert result["files"] == {str(bin_dir / "crictl"): sha256(CRICTL), str(bin_dir / "cri-dockerd"): sha256(DOCKERD)}

    for check_mode in (True, False):
        result = run(node, tar_args(tmp_path, artifacts), check_mode=check_mode)
        assert (result["changed"], result["transferred"], result["reasons"]) == (False, False, [])
        assert node.transfers == [] and len(node.calls) == 1  # one module call, no copy of the tarball


def test_mode_drift_is_fixed_without_a_transfer_and_content_drift_replaces_only_that_file(node, tmp_path, artifacts):
    bin_dir = tmp_path / "usr" / "local" / "bin"
    run(node, tar_args(tmp_path, artifacts))
    os.chmod(bin_dir / "crictl", 0o644)
    result = run(node, tar_args(tmp_path, artifacts))
    assert (result["changed"], result["transferred"], result["installed"]) == (True, False, [])
    assert result["reasons"] == ["%s: mode 0644, wanted 0755" % (bin_dir / "crictl")]
    assert mode(bin_dir / "crictl") == 0o755

    dockerd_inode = (bin_dir / "cri-dockerd").stat().st_ino
    (bin_dir / "crictl").write_bytes(b"edited by hand")
    result = run(node, tar_args(tmp_path, artifacts), check_mode=True)
    assert result["reasons"] == ["%s: content differs from %s" % (bin_dir / "crictl", TARBALL)] and node.transfers == []
    result = run(node, tar_args(tmp_path, artifacts))
    assert (result["changed"], result["installed"]) == (True, [str(bin_dir / "crictl")])
    assert (bin_dir / "crictl").read_bytes() == CRICTL
    assert (bin_dir / "cri-dockerd").stat().st_ino == dockerd_inode, "an identical file is not rewritten"
    assert [p.name for p in bin_dir.iterdir() if p.name.startswith(".")] == []


def test_checksum_mismatch_fails_on_the_controller_before_the_node_is_touched(node, tmp_path, artifacts):
    bin_dir = tmp_path / "usr" / "local" / "bin"
    run(node, tar_args(tmp_path, artifacts))
    good = sha256((artifacts / TARBALL).read_bytes())
    make_tarball(artifacts / TARBALL, {"cri-tools/crictl": b"tampered", "cri-tools/cri-dockerd": b"tampered"})
    result = run(node, tar_args(tmp_path, artifacts))
    assert result["failed"] is True and node.calls == [] and node.transfers == []
    assert result["msg"] == ("crictl_artifacts_dir: %s has sha256 %s, but %s says %s; nothing was changed. Replace the file or fix the checksum"
                             % (artifacts / TARBALL, sha256((artifacts / TARBALL).read_bytes()), artifacts / "SHA256SUMS", good))
    assert (bin_dir / "crictl").read_bytes() == CRICTL and (bin_dir / "cri-dockerd").read_bytes() == DOCKERD


def test_corruption_in_transit_is_caught_on_the_node(node, tmp_path, artifacts):
    bin_dir = tmp_path / "usr" / "local" / "bin"
    run(node, tar_args(tmp_path, artifacts, members=["crictl"]))
    (bin_dir / "crictl").write_bytes(b"old but working")
    node.corrupt_transfer = True
    result = run(node, tar_args(tmp_path, artifacts, members=["crictl"]))
    assert result["failed"] is True
    assert result["msg"].startswith("crictl_artifacts_dir: %s/%s has sha256 " % (tmp_path / "ansible-tmp", TARBALL))
    assert (bin_dir / "crictl").read_bytes() == b"old but working"


@pytest.mark.parametrize("change, message", [
    (lambda d: (d / TARBALL).unlink(), "crictl_artifacts_dir: %s not found in {dir}" % TARBALL),
    (lambda d: (d / "SHA256SUMS").unlink(), "crictl_artifacts_dir: SHA256SUMS not found in {dir}"),
    (lambda d: (d / "SHA256SUMS").write_text("# empty\n"),
     "crictl_artifacts_dir: %s is not listed in {dir}/SHA256SUMS; add its line (sha256sum %s >> SHA256SUMS)" % (TARBALL, TARBALL)),
])
def test_missing_artifact_names_the_file_and_the_variable(node, tmp_path, artifacts, change, message):
    change(artifacts)
    result = run(node, tar_args(tmp_path, artifacts))
    assert (result["failed"], result["changed"]) == (True, False)
    assert result["msg"] == message.format(dir=artifacts)
    assert node.calls == []


def test_missing_member_is_reported_before_the_node_is_touched(node, tmp_path, artifacts):
    result = run(node, tar_args(tmp_path, artifacts, members=["crictl", "ctr"]))
    assert result["msg"] == ("crictl_artifacts_dir: %s has no member ctr (after strip_components=1); it has: crictl, cri-dockerd, LICENSE"
                             % TARBALL)
    assert node.calls == []


def test_single_binary_with_an_inline_checksum(node, tmp_path, artifacts):
    dest = tmp_path / "usr" / "local" / "sbin" / "runc"
    args = {"src": str(artifacts / "runc.amd64"), "checksum": "sha256:" + sha256(b"runc binary"), "dest": str(dest),
            "owner": str(os.getuid()), "group": str(os.getgid())}
    result = run(node, args)
    assert (result["changed"], result["installed"], result["transferred"]) == (True, [str(dest)], True)
    assert dest.read_bytes() == b"runc binary" and mode(dest) == 0o755
    result = run(node, args)
    assert (result["changed"], result["transferred"]) == (False, False)
    result = run(node, dict(args, checksum="sha256:" + "0" * 64))
    assert result["msg"].startswith("src: %s has sha256 %s, but checksum says %s" % (artifacts / "runc.amd64", sha256(b"runc binary"), "0" * 64))


def test_internal_options_cannot_be_set_by_a_task(node, tmp_path, artifacts):
    result = run(node, tar_args(tmp_path, artifacts, expected_files={}))
    assert result == {"failed": True, "msg": "expected_files is set by the action plugin, not by a task"}


def test_member_hashes_are_computed_once_per_artifact_file(node, tmp_path, artifacts, monkeypatch):
    computed = []
    real = action_plugin.member_hashes
    monkeypatch.setattr(action_plugin, "member_hashes", lambda *a: computed.append(a[0]) or real(*a))
    run(node, tar_args(tmp_path, artifacts))
    result = run(node, tar_args(tmp_path, artifacts))
    assert result["changed"] is False and len(computed) == 1, "the second run (another host, the next run) reuses the hashes"
    run(node, tar_args(tmp_path, artifacts, members=["crictl"]))
    assert len(computed) == 2, "another selection of members is another entry"
    make_tarball(artifacts / TARBALL, {"cri-tools/crictl": b"v1.37", "cri-tools/cri-dockerd": DOCKERD})
    write_sums(artifacts, TARBALL, "runc.amd64")
    result = run(node, tar_args(tmp_path, artifacts))
    assert len(computed) == 3 and result["changed"] is True and (tmp_path / "usr/local/bin/crictl").read_bytes() == b"v1.37"


def test_an_archive_with_links_from_the_artifacts_directory(node, tmp_path, artifacts):
    # the layout of Kata's release tarball: configuration.toml is a link to one of the hypervisors' files
    make_tarball(artifacts / "kata-static-3.99.0-amd64.tar.xz",
                 {"./opt/kata/share/defaults/kata-containers/configuration-qemu.toml": (b"[hypervisor.qemu]\n", 0o644),
                  "./opt/kata/bin/containerd-shim-kata-v2": b"shim"},
                 links={"./opt/kata/share/defaults/kata-containers/configuration.toml": "configuration-qemu.toml"})
    write_sums(artifacts, TARBALL, "runc.amd64", "kata-static-3.99.0-amd64.tar.xz")
    root = tmp_path / "root"
    args = {"src": str(artifacts / "kata-static-3.99.0-amd64.tar.xz"), "checksum_file": str(artifacts / "SHA256SUMS"),
            "dest": str(root), "variable": "kata_artifacts_dir", "owner": str(os.getuid()), "group": str(os.getgid())}
    result = run(node, args)
    assert not result.get("failed") and result["changed"], result
    link = root / "opt" / "kata" / "share" / "defaults" / "kata-containers" / "configuration.toml"
    assert os.readlink(link) == "configuration-qemu.toml"
    result = run(node, args, check_mode=True)
    assert (result["changed"], node.transfers) == (False, [])
    result = run(node, args)
    assert (result["changed"], node.transfers, len(node.calls)) == (False, [], 1)
