# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeforge.cluster.cri_socket and the crictl role against real containerd daemons.

Daemons (Debian's containerd 1.6 / 1.7 / 2.1, each with its own root, state and sockets):
a CRI-enabled one, one with the cri plugin disabled (what Docker ships), a stale socket file,
a unix socket that answers HTTP/1.1, later a second CRI-enabled containerd for the ambiguity.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from ansible_collections.kubeforge.cluster.plugins.module_utils import _cri_socket as cs
from containerd_daemon import ContainerdPool

pytestmark = [pytest.mark.daemon, pytest.mark.real_binary]

REPO = Path(__file__).resolve().parents[2]
VERSIONS = {"bookworm": "1.6.", "trixie": "1.7.", "sid": "2.1."}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with ContainerdPool(tmp_path_factory.mktemp("cri")) as daemons:
        yield daemons


class Node:
    """The sockets of one simulated node."""

    def __init__(self, pool):
        self.pool = pool
        self.cri = pool.start("cri", suite="bookworm")
        self.nocri = pool.start("nocri", suite="trixie", cri=False)
        self.stale = pool.stale_socket("stale")
        self.plain = pool.plain_server("plain").endpoint
        self.missing = "unix://%s/missing/containerd.sock" % pool.base_dir

    @property
    def candidates(self):
        return [self.nocri.endpoint, self.stale, self.plain, self.cri.endpoint, self.missing]

    def second(self):
        if "cri2" not in self.pool.daemons:
            self.pool.start("cri2", suite="sid")
        return self.pool.daemons["cri2"]


@pytest.fixture(scope="module")
def node(pool):
    return Node(pool)


def _by_endpoint(endpoints):
    return {e["endpoint"]: e for e in endpoints}


def test_picks_the_cri_containerd_and_explains_the_others(node):
    endpoints, selected, reason = cs.detect(node.candidates)
    assert selected == node.cri.endpoint
    assert reason == "the only CRI endpoint on this node (5 sockets checked)"
    found = _by_endpoint(endpoints)
    assert [e["endpoint"] for e in endpoints] == node.candidates

    cri = found[node.cri.endpoint]
    assert (cri["exists"], cri["listening"], cri["cri"], cri["cri_api"], cri["runtime"]) == (True, True, True, "v1", "containerd")
    assert cri["runtime_version"].startswith("1.6.")
    assert cri["reason"] == "answers runtime.v1.RuntimeService/Version (gRPC probe): containerd %s, CRI API v1" % cri["runtime_version"]

    nocri = found[node.nocri.endpoint]
    assert (nocri["listening"], nocri["cri"], nocri["cri_api"], nocri["runtime"]) == (True, False, None, "containerd")
    assert nocri["runtime_version"].startswith("1.7.")
    assert "UNIMPLEMENTED (12): unknown service runtime.v1.RuntimeService" in nocri["reason"]
    assert "its plugin list has no cri plugin" in nocri["reason"]

    stale = found[node.stale]
    assert (stale["exists"], stale["listening"], stale["cri"]) == (True, False, False)
    assert stale["reason"] == "stale socket file: nothing listens on it (connection refused)"

    plain = found[node.plain]
    assert (plain["exists"], plain["listening"], plain["cri"], plain["runtime"]) == (True, True, False, None)
    assert plain["reason"] == "listens but is not a gRPC server: answered 'HTTP/1.1 400 Bad Request', not an HTTP/2 server preface (gRPC probe)"

    missing = found[node.missing]
    assert (missing["exists"], missing["listening"], missing["cri"], missing["reason"]) == (False, False, False, "no such socket")


@pytest.mark.parametrize("suite", sorted(VERSIONS))
def test_every_containerd_generation_is_told_apart(pool, suite):
    with_cri = pool.start("gen-cri-" + suite, suite=suite)
    without = pool.start("gen-nocri-" + suite, suite=suite, cri=False)
    endpoints, selected, _reason = cs.detect([without.endpoint, with_cri.endpoint])
    assert selected == with_cri.endpoint
    off, on = endpoints
    assert on["cri"] is True and on["runtime"] == "containerd" and on["runtime_version"].startswith(VERSIONS[suite])
    assert off["cri"] is False and off["runtime"] == "containerd" and off["runtime_version"].startswith(VERSIONS[suite])
    assert off["reason"].startswith("containerd %s answers its own API but not the CRI" % off["runtime_version"])
    # the helper's daemons are isolated: their own socket, and the version the probe saw is what ctr sees
    dumped = tomllib.loads(without.config_dump())
    assert dumped["grpc"]["address"] == without.socket
    assert "io.containerd.grpc.v1.cri" in dumped["disabled_plugins"]
    assert "Version:  %s" % off["runtime_version"] in without.ctr("version").stdout


def test_ambiguity_lists_each_runtime_and_the_options(node):
    second = node.second()
    with pytest.raises(cs.CriSocketError) as exc:
        cs.detect(node.candidates + [second.endpoint])
    versions = _by_endpoint(exc.value.endpoints)
    assert str(exc.value) == (
        "Found multiple CRI endpoints on this node: %s (containerd %s), %s (containerd %s). kubeadm, kubelet and crictl "
        "need exactly one: set the option preferred to one of these endpoints, or preferred_runtime to the runtime to use "
        "(containerd, crio, cri-dockerd)." % (
            node.cri.endpoint, versions[node.cri.endpoint]["runtime_version"],
            second.endpoint, versions[second.endpoint]["runtime_version"]))


def test_preferred_endpoint_resolves_the_ambiguity(node):
    second = node.second()
    assert cs.detect(node.candidates + [second.endpoint], preferred=second.endpoint)[1] == second.endpoint
    # the preferred socket is probed even when it is not a candidate
    endpoints, selected, reason = cs.detect(node.candidates, preferred=second.socket)
    assert selected == second.endpoint
    assert reason == "preferred endpoint; it answers the CRI (containerd %s)" % _by_endpoint(endpoints)[second.endpoint]["runtime_version"]


def test_preferred_runtime_that_matches_two_fails(node):
    second = node.second()
    with pytest.raises(cs.CriSocketError, match="^preferred_runtime=containerd matches several CRI endpoints: .*"
                                                "Set preferred to one of these endpoints.$"):
        cs.detect(node.candidates + [second.endpoint], preferred_runtime="containerd")
    assert cs.detect(node.candidates, preferred_runtime="containerd")[1] == node.cri.endpoint


def test_preferred_socket_without_cri_fails_listing_the_cri_ones(node):
    with pytest.raises(cs.CriSocketError) as exc:
        cs.detect(node.candidates, preferred=node.nocri.endpoint)
    message = str(exc.value)
    assert message.startswith("preferred=%s is not a usable CRI endpoint: containerd 1.7." % node.nocri.endpoint)
    assert message.endswith("CRI endpoints on this node: %s (containerd %s). Set preferred to one of them, or leave it empty "
                            "to detect." % (node.cri.endpoint, _by_endpoint(exc.value.endpoints)[node.cri.endpoint]["runtime_version"]))


def test_preferred_runtime_absent(node):
    with pytest.raises(cs.CriSocketError, match="^preferred_runtime=crio: no CRI endpoint of that runtime on this node. "
                                                "CRI endpoints found: unix://.*/cri/containerd.sock"):
        cs.detect(node.candidates, preferred_runtime="crio")


def test_no_cri_endpoint_names_the_runtime_roles(node):
    with pytest.raises(cs.CriSocketError) as exc:
        cs.detect([node.nocri.endpoint, node.stale, node.plain, node.missing])
    message = str(exc.value)
    assert message.startswith("No CRI endpoint found on this node. Checked: %s: containerd 1.7." % node.nocri.endpoint)
    assert "containerd at %s has no CRI: enable its cri plugin" % node.nocri.endpoint in message
    assert message.endswith(
        "Install and start a container runtime that serves the CRI, e.g. with the role kubeforge.cluster.containerd "
        "(containerd with its cri plugin enabled) or kubeforge.cluster.cri_dockerd (Docker Engine with cri-dockerd); "
        "if it listens on another socket, add that socket to extra_candidates.")


def test_a_stopped_daemon_leaves_a_stale_socket(pool):
    daemon = pool.start("stopped", suite="bookworm")
    assert cs.detect([daemon.endpoint])[1] == daemon.endpoint
    daemon.stop()
    if not os.path.exists(daemon.socket):  # containerd removes its socket on a clean exit; a crash does not
        import socket as socket_mod

        with socket_mod.socket(socket_mod.AF_UNIX) as leftover:
            leftover.bind(daemon.socket)
    with pytest.raises(cs.CriSocketError, match="stale socket file: nothing listens on it"):
        cs.detect([daemon.endpoint])


# ------------------------------------------------------------------ through ansible-playbook


def ansible_playbook(tmp_path, playbook, extra_vars=None, args=()):
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False), encoding="utf-8")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")]
    if extra_vars:
        (tmp_path / "vars.json").write_text(json.dumps(extra_vars), encoding="utf-8")
        argv += ["-e", "@%s" % (tmp_path / "vars.json")]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run(argv + list(args), cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False)
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout)
    counts = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recap.groups()))) if recap else {}
    return proc, counts


PLAY = {"hosts": "localhost", "gather_facts": False, "vars": {"ansible_python_interpreter": "/usr/bin/python3"}}


def test_module_end_to_end(node, tmp_path):
    second = node.second()
    out = tmp_path / "result.json"
    tasks = [
        {"name": "Find the CRI endpoint (check mode)", "kubeforge.cluster.cri_socket": {"candidates": "{{ candidates }}"},
         "check_mode": True, "register": "detected"},
        {"name": "Two CRI endpoints", "kubeforge.cluster.cri_socket": {"candidates": "{{ candidates + [second] }}"},
         "register": "ambiguous", "ignore_errors": True},
        {"name": "Two CRI endpoints and a preference", "kubeforge.cluster.cri_socket": {
            "candidates": "{{ candidates }}", "extra_candidates": ["{{ second }}"], "preferred": "{{ second }}"},
         "register": "resolved"},
        {"name": "Save the results", "ansible.builtin.copy": {
            "content": "{{ {'detected': detected, 'ambiguous': ambiguous, 'resolved': resolved} | to_json }}", "dest": str(out)}},
    ]
    proc, counts = ansible_playbook(tmp_path, [dict(PLAY, tasks=tasks)], {"candidates": node.candidates, "second": second.endpoint})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts["failed"] == 0 and counts["changed"] == 1  # only the copy of the results
    results = json.loads(out.read_text(encoding="utf-8"))
    detected = results["detected"]
    assert detected["changed"] is False and detected["cri_socket"] == node.cri.endpoint
    assert [e["cri"] for e in detected["endpoints"]] == [False, False, False, True, False]
    assert detected["selected_reason"] == "the only CRI endpoint on this node (5 sockets checked)"
    assert set(detected["endpoints"][0]) == {"endpoint", "path", "exists", "listening", "cri", "cri_api", "runtime",
                                             "runtime_version", "reason", "alias_of"}
    ambiguous = results["ambiguous"]
    assert ambiguous["failed"] is True and ambiguous["msg"].startswith("Found multiple CRI endpoints on this node")
    assert "set the option preferred" in ambiguous["msg"] and len(ambiguous["endpoints"]) == 6
    assert results["resolved"]["cri_socket"] == second.endpoint


def test_crictl_role(node, tmp_path):
    config = tmp_path / "crictl.yaml"
    play = [dict(PLAY, roles=["kubeforge.cluster.crictl"])]
    role_vars = {"crictl_config_path": str(config), "crictl_cri_socket_candidates": node.candidates}
    expected = {"runtime-endpoint": node.cri.endpoint, "image-endpoint": node.cri.endpoint, "timeout": 10, "debug": False,
                "pull-image-on-create": False}

    proc, counts = ansible_playbook(tmp_path, play, role_vars)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counts["changed"] == 1
    assert yaml.safe_load(config.read_text(encoding="utf-8")) == expected
    assert oct(config.stat().st_mode & 0o777) == "0o644"

    proc, counts = ansible_playbook(tmp_path, play, role_vars)
    assert proc.returncode == 0 and counts["changed"] == 0, proc.stdout

    # a second CRI endpoint: the role stops with the module's message and leaves the file alone
    second = node.second()
    ambiguous = dict(role_vars, crictl_cri_socket_candidates=node.candidates + [second.endpoint])
    proc, counts = ansible_playbook(tmp_path, play, ambiguous)
    assert proc.returncode != 0 and counts["failed"] == 1
    assert "Found multiple CRI endpoints on this node" in proc.stdout
    assert "kubeforge_cri_socket" in proc.stdout  # the role's message names its variable
    assert yaml.safe_load(config.read_text(encoding="utf-8")) == expected

    # check mode + diff predicts the change without writing it
    proc, counts = ansible_playbook(tmp_path, play, dict(ambiguous, kubeforge_cri_socket=second.endpoint), ("--check", "--diff"))
    assert proc.returncode == 0 and counts["changed"] == 1, proc.stdout
    assert "+runtime-endpoint: %s" % second.endpoint in proc.stdout
    assert "-runtime-endpoint: %s" % node.cri.endpoint in proc.stdout
    assert yaml.safe_load(config.read_text(encoding="utf-8")) == expected

    # the inventory variable settles it; the old file is kept as a backup
    proc, counts = ansible_playbook(tmp_path, play, dict(ambiguous, kubeforge_cri_socket=second.endpoint, crictl_debug=True))
    assert proc.returncode == 0 and counts["changed"] == 1, proc.stdout
    written = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert written == dict(expected, debug=True, **{"runtime-endpoint": second.endpoint, "image-endpoint": second.endpoint})
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("crictl.yaml.") and p.name != "crictl.yaml"]
    assert len(backups) == 1 and yaml.safe_load(backups[0].read_text(encoding="utf-8")) == expected

    # a malformed endpoint is refused by name
    proc, counts = ansible_playbook(tmp_path, play, {"crictl_config_path": str(config), "kubeforge_cri_socket": "x.sock"})
    assert proc.returncode != 0 and "kubeforge_cri_socket='x.sock'" in proc.stdout
