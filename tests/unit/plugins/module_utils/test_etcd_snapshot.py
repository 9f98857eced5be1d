# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_snapshot's restore steps with a scripted etcdutl (real etcdutl/etcdctl in tests/integration/test_etcd_real.py)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _etcd_snapshot as snap


class Tool:
    def __init__(self, tmp_path):
        self.argv = []

    def __call__(self, argv):
        self.argv.append(argv)
        if argv[1:3] == ["snapshot", "status"]:
            return 0, json.dumps({"hash": 1, "revision": 5, "totalKey": 9, "totalSize": 20480}), ""
        os.makedirs(os.path.join(argv[argv.index("--data-dir") + 1], "member", "wal"))
        return 0, "", ""


@pytest.fixture()
def setup(tmp_path):
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(b"etcd snapshot bytes")
    data = tmp_path / "data"
    (data / "member").mkdir(parents=True)
    (data / "member" / "old").write_text("old data")
    params = {"path": str(snapshot), "sha256": hashlib.sha256(b"etcd snapshot bytes").hexdigest(), "data_dir": str(data), "name": "n1",
              "initial_cluster": "n1=https://10.0.0.11:2380", "initial_cluster_token": "restored-1", "peer_urls": ["https://10.0.0.11:2380"]}
    return tmp_path, params


def test_stage_then_swap_keeps_the_old_data(setup):
    tmp_path, params = setup
    run = Tool(tmp_path)
    tool = snap.SnapshotTool(run, etcdutl="/usr/bin/etcdutl")
    result = snap.stage(tool, params, False)
    assert result["changed"] is True and result["snapshot"]["total_keys"] == 9
    assert run.argv[1] == ["/usr/bin/etcdutl", "snapshot", "restore", params["path"], "--data-dir", params["data_dir"] + ".restore", "--name", "n1",
                           "--initial-cluster", "n1=https://10.0.0.11:2380", "--initial-cluster-token", "restored-1",
                           "--initial-advertise-peer-urls", "https://10.0.0.11:2380"]
    assert snap.stage(tool, params, False)["changed"] is False
    with pytest.raises(snap.SnapshotError, match="etcd is still running"):
        snap.swap(params, True, lambda path: None, False)
    owners = []
    result = snap.swap(params, False, owners.append, False)
    assert result["previous_data_dir"].startswith(params["data_dir"] + ".before-restore-")
    assert open(os.path.join(result["previous_data_dir"], "member", "old")).read() == "old data"
    assert os.path.isdir(os.path.join(params["data_dir"], "member", "wal")) and owners == [params["data_dir"]]
    assert oct(os.stat(params["data_dir"]).st_mode & 0o777) == "0o700"
    assert snap.swap(params, False, owners.append, False)["changed"] is False
    assert snap.stage(tool, params, False) == {"changed": False, "staging_dir": params["data_dir"] + ".restore", "already_restored": True}


def test_damaged_snapshot_changes_nothing(setup):
    tmp_path, params = setup
    with pytest.raises(snap.SnapshotError, match="has sha256 .* expected 0{64}: the copy is damaged"):
        snap.stage(snap.SnapshotTool(Tool(tmp_path), etcdctl="/usr/bin/etcdctl"), dict(params, sha256="0" * 64), False)
    with pytest.raises(snap.SnapshotError, match=r"data.restore does not hold this snapshot .* run state=staged first"):
        snap.swap(params, False, lambda path: None, False)
    assert sorted(os.listdir(tmp_path)) == ["data", "snapshot.db"]

    def broken(argv):
        return 1, "", "Error: snapshot file integrity check failed"
    with pytest.raises(snap.SnapshotError, match="is not a usable etcd snapshot: Error: snapshot file integrity check failed"):
        snap.stage(snap.SnapshotTool(broken, etcdctl="/usr/bin/etcdctl"), params, False)
