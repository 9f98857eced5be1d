# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd_certs action plugin reads the controller's PKI directory and hands the module only this node's files."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.kubeforge.cluster.plugins.action.etcd_certs import ActionModule


def make_action(args):
    task = MagicMock()
    task.args = args
    task.check_mode = False
    task.async_val = 0
    action = ActionModule(task, MagicMock(), MagicMock(), MagicMock(), MagicMock(), None)
    calls = []

    def execute_module(module_name, module_args, task_vars):
        calls.append((module_name, module_args))
        return {"changed": False}
    action._execute_module = execute_module
    return action, calls


def pki_dir(tmp_path):
    for name, cert, key in (("ca", "CA CERT", "CA KEY"), ("node1-server", "SERVER CERT", "SERVER KEY"), ("node2-server", "OTHER", "OTHER KEY")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cert.pem").write_text(cert)
        (tmp_path / name / "key.pem").write_text(key)
    return tmp_path


def test_reads_only_the_named_certificates_and_never_the_ca_key(tmp_path):
    action, calls = make_action({"dir": "/etc/etcd/pki", "src": str(pki_dir(tmp_path)), "owner": "etcd",
                                 "certificates": [{"name": "server", "src": "node1-server"}]})
    action.run(task_vars={})
    module, args = calls[0]
    assert module == "kubeforge.cluster.etcd_certs"
    assert args == {"dir": "/etc/etcd/pki", "owner": "etcd", "ca": "CA CERT",
                    "certificates": [{"name": "server", "cert": "SERVER CERT", "key": "SERVER KEY"}]}
    assert "CA KEY" not in repr(args) and "OTHER" not in repr(args)


@pytest.mark.parametrize(("args", "message"), [
    ({"src": "relative/pki", "certificates": []}, "src: must be the absolute path of a PKI directory on the controller"),
    ({"src": "/x", "certificates": [{"name": "server", "src": "../ca"}]}, r"certificates\[0\]: with src, each entry needs name and src"),
])
def test_bad_src(args, message):
    action, _calls = make_action(dict(args, dir="/etc/etcd/pki"))
    with pytest.raises(AnsibleActionFail, match=message):
        action.run(task_vars={})


def test_missing_file_names_it(tmp_path):
    action, _calls = make_action({"dir": "/etc/etcd/pki", "src": str(pki_dir(tmp_path)), "certificates": [{"name": "peer", "src": "node1-peer"}]})
    with pytest.raises(AnsibleActionFail, match=r"cannot read certificate node1-peer \(.*node1-peer/cert.pem\) on the controller"):
        action.run(task_vars={})
