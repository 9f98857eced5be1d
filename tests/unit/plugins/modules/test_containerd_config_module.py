# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's node-side main(): real files, a small fake containerd executable, no mocks of open()."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import tomllib
from module_harness import FailJson, call_main
from ansible_collections.kubeforge.cluster.plugins.modules import containerd_config

FAKE_CONTAINERD = '''#!%s
# a stand-in for containerd: --version, and "config dump" echoing the candidate
import sys
args = sys.argv[1:]
if args == ["--version"]:
    print("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1")
elif args[0] == "--config" and args[2:] == ["config", "dump"]:
    sys.stdout.write(open(args[1]).read())
else:
    sys.exit("unexpected %%r" %% args)
''' % sys.executable

V2 = '''# keep this comment
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
'''


@pytest.fixture
def fake_containerd(tmp_path):
    binary = tmp_path / "containerd"
    binary.write_text(FAKE_CONTAINERD)
    binary.chmod(0o755)
    return str(binary)


def run_module(args, check_mode=False):
    kind, result = call_main(containerd_config.main, args, check_mode=check_mode)
    return dict(result, failed=True) if kind is FailJson else result


def test_main_merges_keeps_mode_and_is_idempotent(tmp_path, fake_containerd):
    path = tmp_path / "config.toml"
    path.write_text(V2)
    path.chmod(0o640)
    args = {"path": str(path), "containerd_path": fake_containerd, "sandbox_image": "example.org/pause:9", "backup": True}
    result = run_module(args)
    assert result["changed"] and result["validated"] and not result.get("failed")
    assert tomllib.loads(path.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "example.org/pause:9"
    assert path.read_text().startswith("# keep this comment\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert Path(result["backup_file"]).read_text() == V2
    mtime = os.stat(path).st_mtime_ns
    again = run_module(args)
    assert again["changed"] is False and os.stat(path).st_mtime_ns == mtime
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".config.toml.")]
    assert leftovers == []


def test_main_check_mode_does_not_write(tmp_path, fake_containerd):
    path = tmp_path / "config.toml"
    path.write_text(V2)
    result = run_module({"path": str(path), "containerd_path": fake_containerd, "sandbox_image": "example.org/pause:9"}, check_mode=True)
    assert result["changed"] and result["validated"]
    assert path.read_text() == V2


def test_main_fails_clearly_without_tomlkit(tmp_path, monkeypatch):
    monkeypatch.setattr(containerd_config, "HAS_TOMLKIT", False)
    monkeypatch.setattr(containerd_config, "TOMLKIT_IMPORT_ERROR", ImportError("No module named 'tomlkit'"))
    result = run_module({"path": str(tmp_path / "config.toml")})
    assert result["failed"]
    assert "tomlkit" in result["msg"] and "controller" in result["msg"]


def test_main_error_leaves_the_file(tmp_path, fake_containerd):
    path = tmp_path / "config.toml"
    path.write_text(V2 + "[broken\n")
    before = path.read_bytes()
    result = run_module({"path": str(path), "containerd_path": fake_containerd, "sandbox_image": "x"})
    assert result["failed"] and "line 5" in result["msg"]
    assert path.read_bytes() == before
