# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/state.py: the typed, versioned state file: round trip, private mode, corrupt files,
files of the single-file lab tool (schema 1) and of a newer tool."""

from __future__ import annotations

import json

import pytest
from kflab import paths, state
from kflab.errors import LabError, StateError
from lab_fixtures import make_state

# What tools/lab.py wrote before it became a package (no "schema" key, NAT rules as flat lists).
SCHEMA_1 = {
    "lab": "unit", "id": "0a1b2c", "distro": "bookworm", "subnet": "10.150.7.0/24", "gateway": "10.150.7.1",
    "bridge": "kfb-0a1b2c", "key": "/srv/lab/unit/id_ed25519", "inventory": "/srv/inv.yml", "inventory_sha256": "ab" * 32,
    "groups": {"control_plane": ["node1"], "workers": [], "etcd": ["node1"]},
    "nat_rules": [["nat", "POSTROUTING", "-s", "10.150.7.0/24", "-j", "MASQUERADE"]],
    "machines": {"node1": {"index": 1, "address": "10.150.7.11", "netns": "kf-0a1b2c-node1", "veth": "kfv-0a1b2c-1",
                           "dir": "/srv/lab/unit/machines/node1", "root": "/srv/lab/unit/machines/node1/root",
                           "pid": 4242, "pid_start": "777", "systemd": "running"}},
}


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "CACHE_ROOT", tmp_path)
    (tmp_path / "unit").mkdir()
    return tmp_path


def test_corrupt_state_file_reads_as_none(cache):
    (cache / "unit" / "state.json").write_text('{"lab": "unit", "machi', encoding="utf-8")
    assert state.load_state("unit") is None
    (cache / "unit" / "state.json").write_text('["not", "a", "dict"]', encoding="utf-8")
    assert state.load_state("unit") is None


@pytest.mark.parametrize("broken", [
    {"lab": "unit", "machines": ["node1"]},
    {"lab": "unit", "machines": {"node1": {"pid": "4242"}}},
    {"lab": "unit", "nat_rules": ["-j MASQUERADE"]},
    {"lab": "unit", "subnet": 24},
    {"lab": "other"},
])
def test_state_of_the_wrong_shape_reads_as_none(cache, broken):
    (cache / "unit" / "state.json").write_text(json.dumps(broken), encoding="utf-8")
    assert state.load_state("unit") is None


def test_state_roundtrip_is_private(cache):
    lab_state = make_state()
    state.save_state(lab_state)
    assert state.load_state("unit") == lab_state
    assert (cache / "unit" / "state.json").stat().st_mode & 0o777 == 0o600
    saved = json.loads((cache / "unit" / "state.json").read_text(encoding="utf-8"))
    assert saved["schema"] == state.SCHEMA_VERSION
    assert saved["machines"]["node2"]["address"] == "10.150.7.12"


def test_state_of_the_single_file_lab_tool_is_read_and_upgraded(cache):
    (cache / "unit" / "state.json").write_text(json.dumps(SCHEMA_1), encoding="utf-8")
    old = state.load_state("unit")
    assert old.machines["node1"] == state.Machine(
        name="node1", index=1, address="10.150.7.11", netns="kf-0a1b2c-node1", veth="kfv-0a1b2c-1",
        dir="/srv/lab/unit/machines/node1", root="/srv/lab/unit/machines/node1/root", pid=4242, pid_start="777",
        systemd="running")
    assert old.nat_rules == [state.NatRule("nat", "POSTROUTING", ("-s", "10.150.7.0/24", "-j", "MASQUERADE"))]
    assert (old.subnet, old.inventory, old.groups["etcd"]) == ("10.150.7.0/24", "/srv/inv.yml", ["node1"])
    state.save_state(old)
    saved = json.loads((cache / "unit" / "state.json").read_text(encoding="utf-8"))
    assert saved["schema"] == 2
    assert saved["nat_rules"] == [{"table": "nat", "chain": "POSTROUTING", "args": ["-s", "10.150.7.0/24", "-j", "MASQUERADE"]}]
    assert state.load_state("unit") == old


def test_state_of_a_newer_lab_tool_is_refused_clearly(cache):
    (cache / "unit" / "state.json").write_text(json.dumps({"lab": "unit", "schema": 99}), encoding="utf-8")
    with pytest.raises(StateError, match="has schema 99; this lab tool reads schemas up to 2"):
        state.load_state("unit")


def test_partial_state_keeps_what_was_recorded(cache):
    """Written before the machine's pid existed (a crash halfway through up)."""
    (cache / "unit" / "state.json").write_text(json.dumps({"lab": "unit", "machines": {"node1": {"index": 1}, "node2": None}}),
                                               encoding="utf-8")
    partial = state.load_state("unit")
    assert [m.name for m in partial.ordered()] == ["node2", "node1"]
    assert partial.machines["node1"].pid is None and partial.subnet is None


def test_require_state_says_how_to_bring_the_lab_up(cache):
    with pytest.raises(LabError, match=r"lab unit is not up .*start it with `python3 tools/lab.py up --lab unit`"):
        state.require_state("unit")
    (cache / "unit" / "state.json").write_text("{", encoding="utf-8")
    with pytest.raises(LabError, match=r"state.json of lab unit is unreadable: remove the lab with `python3 tools/lab.py down --lab unit`"):
        state.require_state("unit")


def test_other_labs_lists_the_readable_states_beside_this_one(cache):
    state.save_state(make_state(lab="unit"))
    state.save_state(make_state(lab="lab-a", subnet="10.151.0.0/24"))
    (cache / "broken").mkdir()
    (cache / "broken" / "state.json").write_text("{", encoding="utf-8")
    assert [(other.lab, other.subnet) for other in state.other_labs("unit")] == [("lab-a", "10.151.0.0/24")]
