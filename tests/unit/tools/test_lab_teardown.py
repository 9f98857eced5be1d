# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/teardown.py: the executor of a cleanup plan removes the lab's directory and the
inventory ``up`` wrote, keeps a user-edited inventory, and keeps everything after a failed step."""

from __future__ import annotations

import pytest
from kflab import paths, teardown
from kflab.cleanup import RemoveLabDir, RemoveTree
from kflab.inventory import inventory_digest, render_inventory
from lab_fixtures import make_state


@pytest.fixture
def lab_files(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "CACHE_ROOT", tmp_path / "cache")
    default = tmp_path / "inventories" / "unit" / "hosts.yml"
    monkeypatch.setattr(paths, "default_inventory", lambda lab: default)
    state = make_state()
    (tmp_path / "cache" / "unit" / "machines" / "node1").mkdir(parents=True)
    text = render_inventory(state)
    default.parent.mkdir(parents=True)
    default.write_text(text, encoding="utf-8")
    state.inventory, state.inventory_sha256 = str(default), inventory_digest(text)
    return state, tmp_path / "cache" / "unit", default


def test_remove_lab_dir_takes_the_labs_inventory_along(lab_files):
    state, lab_dir, inventory = lab_files
    assert teardown.Executor("unit", state).run([RemoveLabDir(str(lab_dir))]) == []
    assert not lab_dir.exists()
    assert not inventory.exists() and not inventory.parent.exists()


def test_remove_lab_dir_keeps_an_inventory_the_user_edited(lab_files):
    state, lab_dir, inventory = lab_files
    inventory.write_text(inventory.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    assert teardown.Executor("unit", state).run([RemoveLabDir(str(lab_dir))]) == []
    assert not lab_dir.exists()
    assert inventory.read_text(encoding="utf-8").endswith("# mine\n")


def test_nothing_is_removed_after_a_failed_step(lab_files):
    state, lab_dir, inventory = lab_files
    executor = teardown.Executor("unit", state)
    executor.errors.append("ip link del kfv-x-1: busy")
    executor.remove_tree(RemoveTree(str(lab_dir / "machines" / "node1")))
    executor.remove_lab_dir(RemoveLabDir(str(lab_dir)))
    assert (lab_dir / "machines" / "node1").is_dir() and inventory.exists()
    assert executor.errors == ["ip link del kfv-x-1: busy"]
