# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/kflab/inventory.py: the Ansible inventory, /etc/hosts of the machines, molecule's instance
config, and telling the lab's own inventory from a user's file."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest
import yaml
from kflab import inventory
from lab_fixtures import make_state


def test_render_inventory_structure():
    data = yaml.safe_load(inventory.render_inventory(make_state()))
    all_ = data["all"]
    assert all_["vars"]["ansible_user"] == "root"
    assert all_["vars"]["ansible_ssh_private_key_file"] == "/srv/lab/unit/id_ed25519"
    assert all_["vars"]["ansible_python_interpreter"] == "/usr/bin/python3"
    assert "StrictHostKeyChecking=no" in all_["vars"]["ansible_ssh_common_args"]
    assert all_["hosts"] == {"node1": {"ansible_host": "10.150.7.11"}, "node2": {"ansible_host": "10.150.7.12"},
                             "node3": {"ansible_host": "10.150.7.13"}}
    children = all_["children"]
    assert set(children["etcd"]["hosts"]) == {"node1", "node2", "node3"}
    assert set(children["control_plane"]["hosts"]) == {"node1"}
    assert set(children["workers"]["hosts"]) == {"node2", "node3"}
    assert set(children["kube_nodes"]["children"]) == {"control_plane", "workers"}


def test_each_lab_has_its_own_etcd_ca_dir():
    first = yaml.safe_load(inventory.render_inventory(make_state()))["all"]["vars"]["etcd_ca_dir"]
    other_state = make_state()
    other_state.lab = "other"
    other = yaml.safe_load(inventory.render_inventory(other_state))["all"]["vars"]["etcd_ca_dir"]
    assert first != other
    assert first.startswith("/") and first.endswith("/etcd-pki")


def test_render_inventory_single_machine_has_empty_workers():
    data = yaml.safe_load(inventory.render_inventory(make_state(names=("solo",))))
    assert data["all"]["children"]["workers"] == {}
    assert set(data["all"]["children"]["control_plane"]["hosts"]) == {"solo"}


def test_render_inventory_quotes_awkward_paths():
    state = make_state()
    state.key = "/srv/my lab/key: 1"
    data = yaml.safe_load(inventory.render_inventory(state))
    assert data["all"]["vars"]["ansible_ssh_private_key_file"] == "/srv/my lab/key: 1"


@pytest.mark.skipif(shutil.which("ansible-inventory") is None, reason="ansible-inventory not on PATH")
def test_rendered_inventory_as_ansible_sees_it(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(inventory.render_inventory(make_state()), encoding="utf-8")
    out = subprocess.run(["ansible-inventory", "-i", str(path), "--list"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert sorted(data["kube_nodes"]["children"]) == ["control_plane", "workers"]
    assert data["control_plane"]["hosts"] == ["node1"]
    assert sorted(data["etcd"]["hosts"]) == ["node1", "node2", "node3"]
    assert data["_meta"]["hostvars"]["node2"]["ansible_host"] == "10.150.7.12"
    assert data["_meta"]["hostvars"]["node2"]["ansible_user"] == "root"


def test_hosts_file_lists_every_machine():
    text = inventory.render_hosts_file(make_state())
    assert "127.0.0.1\tlocalhost" in text
    assert "10.150.7.11\tnode1\n10.150.7.12\tnode2\n10.150.7.13\tnode3\n" in text


def test_instance_config_for_molecule():
    assert inventory.instance_config(make_state(names=("a", "b"))) == [
        {"instance": "a", "address": "10.150.7.11", "user": "root", "port": 22, "identity_file": "/srv/lab/unit/id_ed25519"},
        {"instance": "b", "address": "10.150.7.12", "user": "root", "port": 22, "identity_file": "/srv/lab/unit/id_ed25519"},
    ]


def test_is_lab_inventory_by_digest_or_header(tmp_path):
    state = make_state()
    text = inventory.render_inventory(state)
    path = tmp_path / "hosts.yml"
    path.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert inventory.inventory_digest(text) == digest
    assert inventory.is_lab_inventory(path, "unit", digest)
    assert inventory.is_lab_inventory(path, "unit")  # state lost: the header names the lab
    assert not inventory.is_lab_inventory(path, "unit2")  # another lab's name is not a prefix match
    path.write_text(text + "# my own note\n", encoding="utf-8")
    assert not inventory.is_lab_inventory(path, "unit", digest)  # edited by the user: kept
    path.write_text("all:\n  hosts: {}\n", encoding="utf-8")
    assert not inventory.is_lab_inventory(path, "unit")
    assert not inventory.is_lab_inventory(tmp_path / "missing.yml", "unit")
