# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.docker_daemon_config main() on real files: check mode -> apply -> re-apply -> diff -> errors.

dockerd is a small script standing in for Debian 12's dockerd 20.10 (no --validate; its --help lists the flags); the
real dockerd binaries are run by tests/integration/test_docker_daemon_config_real.py.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from module_harness import exits, fails
from ansible_collections.kubeforge.cluster.plugins.modules import docker_daemon_config

OLD_DOCKERD = """#!/bin/sh
case "$1" in
  --validate) echo "unknown flag: --validate" >&2; echo "See 'dockerd --help'." >&2; exit 125 ;;
  --help) cat <<'EOF'
Options:
      --config-file string                    Daemon configuration file (default "/etc/docker/daemon.json")
      --exec-opt list                         Runtime execution options
  -H, --host list                             Daemon socket(s) to connect to
      --insecure-registry list                Enable insecure registry communication
      --log-driver string                     Default driver for container logs (default "json-file")
      --log-opt map                           Default log driver options for containers (default map[])
      --registry-mirror list                  Preferred Docker registry mirror
      --data-root string                      Root directory of persistent Docker state (default "/var/lib/docker")
EOF
  ;;
esac
"""


@pytest.fixture
def node(tmp_path, monkeypatch):
    (tmp_path / "etc" / "docker").mkdir(parents=True)
    dockerd = tmp_path / "dockerd"
    dockerd.write_text(OLD_DOCKERD)
    dockerd.chmod(0o755)
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "cmdline").write_bytes(b"/sbin/init\0")
    (proc / "812").mkdir()
    (proc / "812" / "cmdline").write_bytes(b"/usr/sbin/dockerd\0-H\0fd://\0--containerd=/run/containerd/containerd.sock\0")
    monkeypatch.setattr(docker_daemon_config, "PROC", str(proc))
    return tmp_path


def args_for(node, **extra):
    return dict({"path": str(node / "etc" / "docker" / "daemon.json"), "dockerd_path": str(node / "dockerd"),
                 "exec_opts": {"native.cgroupdriver": "systemd"},
                 "settings": {"log-driver": "json-file", "log-opts": {"max-size": "100m"},
                              "registry-mirrors": ["https://mirror.lab.invalid"]}}, **extra)


def run_ok(args, **kwargs):
    return exits(docker_daemon_config.main, args, **kwargs)


def run_failed(args, **kwargs):
    return fails(docker_daemon_config.main, args, **kwargs)


def test_check_apply_reapply_on_an_operators_file(node):
    path = node / "etc" / "docker" / "daemon.json"
    original = '{\n  "data-root": "/srv/docker",\n  "log-opts": {"max-file": "3"}\n}\n'
    path.write_text(original)
    checked = run_ok(args_for(node), check_mode=True, diff=True)
    assert checked["changed"] and checked["restart_required"] and path.read_text() == original
    assert checked["validated_with"].startswith("dockerd --help keys")
    assert json.loads(checked["diff"]["before"]) == json.loads(original)

    applied = run_ok(args_for(node, backup=True), diff=True)
    assert applied["changed"] and os.path.exists(applied["backup_file"])
    assert json.loads(path.read_text()) == {"data-root": "/srv/docker", "log-opts": {"max-file": "3", "max-size": "100m"},
                                            "log-driver": "json-file", "registry-mirrors": ["https://mirror.lab.invalid"],
                                            "exec-opts": ["native.cgroupdriver=systemd"]}
    assert applied["changed_keys"] == ["exec-opts", "log-driver", "log-opts", "registry-mirrors"]

    again = run_ok(args_for(node), check_mode=True)
    assert not again["changed"] and not again["restart_required"] and not again["reload_required"]
    assert not run_ok(args_for(node))["changed"]


def test_a_new_file_is_created_0644(node):
    path = node / "etc" / "docker" / "daemon.json"
    run_ok(args_for(node))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_invalid_json_is_refused_and_left_untouched(node):
    path = node / "etc" / "docker" / "daemon.json"
    path.write_text('{"log-driver": "json-file",\n}\n')
    failed = run_failed(args_for(node))
    assert "%s is not valid JSON at line 2 column 1" % path in failed["msg"]
    assert path.read_text() == '{"log-driver": "json-file",\n}\n'
    assert sorted(os.listdir(path.parent)) == ["daemon.json"], "no candidate or backup left behind"


def test_a_key_the_running_dockerd_gets_as_a_flag_is_refused(node):
    failed = run_failed(args_for(node, settings={"hosts": ["unix:///run/docker.sock"]}))
    assert "the running dockerd gets hosts as command-line flags" in failed["msg"]
    assert not (node / "etc" / "docker" / "daemon.json").exists()


def test_a_misspelled_key_is_refused_by_the_old_dockerd_flags(node):
    failed = run_failed(args_for(node, settings={"registry-mirrorz": ["https://m.lab.invalid"]}))
    assert "this dockerd has no configuration key registry-mirrorz" in failed["msg"]


def test_proxy_credentials_never_reach_the_result(node):
    # "proxies" came with Docker 23, whose --validate judges it; the old dockerd stand-in would refuse the key
    args = args_for(node, validate=False, settings={"proxies": {"http-proxy": "http://lab:proxy-pw-lab-only@proxy.lab.invalid:3128"}})
    result = run_ok(args, diff=True)
    shown = json.dumps(result)
    assert "proxy-pw-lab-only" not in shown and "proxy.lab.invalid:3128" in shown
    path = node / "etc" / "docker" / "daemon.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symlinked_daemon_json_is_edited_through_the_link(node):
    target = node / "srv-daemon.json"
    target.write_text("{}\n")
    (node / "etc" / "docker" / "daemon.json").symlink_to(target)
    run_ok(args_for(node))
    assert os.path.islink(node / "etc" / "docker" / "daemon.json")
    assert json.loads(target.read_text())["log-driver"] == "json-file"
