#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: containerd_config_node
short_description: Node-side helper of kubeforge.cluster.containerd_config (not for direct use)
version_added: 0.2.0
description:
  - The part of M(kubeforge.cluster.containerd_config) that runs on the managed node; its action plugin calls it.
    Use M(kubeforge.cluster.containerd_config) in playbooks.
  - O(op=inspect) reads the file (a symlink is followed to the regular file it points to), runs
    C(containerd --version), and C(containerd config default) for a missing or comment-only file or
    C(containerd --config <file> config dump) for an existing one.
  - O(op=dump) writes O(candidate) next to the file (mode 0600; in check mode in the module's temporary
    directory) and runs C(containerd --config <candidate> config dump) (or C(config migrate)).
  - O(op=install) moves that candidate (or O(content)) over the file while holding a lock on its directory,
    only when the file still has the sha256 O(expected_sha256); otherwise it fails with RV(conflict=true).
  - O(op=discard) removes a candidate that is not installed.
  - Needs only python3 on the node.
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - O(op=inspect) and O(op=dump) run containerd also in check mode (they change nothing); O(op=install) refuses to run.
  diff_mode:
    support: none
options:
  op:
    description: The operation.
    type: str
    required: true
    choices: [inspect, dump, install, discard]
  path:
    description: The containerd configuration file (absolute).
    type: str
    required: true
  containerd_path:
    description: The containerd binary (a name looked up in E(PATH) or an absolute path).
    type: str
    default: containerd
  dump_current:
    description: With O(op=inspect), also run C(config dump) on the existing file.
    type: bool
    default: false
  candidate:
    description: With O(op=dump), the TOML text to judge. Never logged.
    type: str
  command:
    description: With O(op=dump), the C(containerd config) subcommand run on the candidate.
    type: str
    choices: [dump, migrate]
    default: dump
  stage:
    description: With O(op=dump), keep the candidate next to the file for O(op=install) (never in check mode).
    type: bool
    default: false
  staged:
    description: With O(op=install) or O(op=discard), the candidate file RV(staged) returned by O(op=dump).
    type: str
  staged_sha256:
    description: With O(op=install), the sha256 of that candidate.
    type: str
  content:
    description: With O(op=install) and no O(staged), the new content (when nothing was validated). Never logged.
    type: str
  expected_sha256:
    description: With O(op=install), the sha256 the file had when it was read; empty when it did not exist.
    type: str
    default: ""
  backup:
    description: With O(op=install), keep a timestamped copy of the old file.
    type: bool
    default: false
  mode:
    description: With O(op=install), the mode of a file that did not exist yet (an existing file keeps its own).
    type: raw
    default: "0644"
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Inspect the containerd configuration (what the containerd_config action plugin does first)
  kubeforge.cluster.containerd_config_node:
    op: inspect
    path: /etc/containerd/config.toml
    dump_current: true
"""

RETURN = r"""
resolved:
  description: The regular file the path stands for (the target of a symlink).
  returned: success
  type: str
exists:
  description: Whether the file exists (O(op=inspect)).
  returned: success
  type: bool
content:
  description: The file's text (O(op=inspect)).
  returned: success
  type: str
sha256:
  description: The file's sha256, null when missing (O(op=inspect)).
  returned: success
  type: str
version:
  description: rc, stdout and stderr of C(containerd --version) (O(op=inspect)); null without a binary.
  returned: success
  type: dict
default:
  description: rc, stdout and stderr of C(containerd config default) (O(op=inspect), missing or comment-only file).
  returned: success
  type: dict
current_dump:
  description: rc, stdout and stderr of C(config dump) of the file as read (O(op=inspect) with O(dump_current)).
  returned: success
  type: dict
rc:
  description: Exit status of the containerd command (O(op=dump)).
  returned: success
  type: int
stdout:
  description: Its standard output (O(op=dump)).
  returned: success
  type: str
stderr:
  description: Its standard error (O(op=dump)).
  returned: success
  type: str
staged:
  description: The kept candidate file (O(op=dump) with O(stage)), null otherwise.
  returned: success
  type: str
staged_sha256:
  description: Its sha256.
  returned: success
  type: str
backup_file:
  description: The backup made by O(op=install).
  returned: success
  type: str
conflict:
  description: True when O(op=install) found the file changed since it was read (nothing was written).
  returned: failure
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils import _containerd_config_node as node


def argument_spec():
    return dict(
        op=dict(type="str", required=True, choices=["inspect", "dump", "install", "discard"]),
        path=dict(type="str", required=True),
        containerd_path=dict(type="str", default="containerd"),
        dump_current=dict(type="bool", default=False),
        candidate=dict(type="str", no_log=True),
        command=dict(type="str", default="dump", choices=["dump", "migrate"]),
        stage=dict(type="bool", default=False),
        staged=dict(type="str"),
        staged_sha256=dict(type="str"),
        content=dict(type="str", no_log=True),
        expected_sha256=dict(type="str", default=""),
        backup=dict(type="bool", default=False),
        mode=dict(type="raw", default="0644"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("op", "dump", ("candidate",)), ("op", "discard", ("staged",))])
    p = module.params
    if not p["path"].startswith("/"):
        module.fail_json(msg="path must be absolute, got %r" % p["path"])
    try:
        if p["op"] == "inspect":
            result = node.inspect(module, p["path"], p["containerd_path"], p["dump_current"])
        elif p["op"] == "dump":
            result = node.dump(module, p["path"], p["containerd_path"], p["candidate"], p["command"], p["stage"])
        elif p["op"] == "install":
            if p["staged"] is None and p["content"] is None:
                module.fail_json(msg="install needs staged or content")
            mode = int(p["mode"], 8) if isinstance(p["mode"], str) else int(p["mode"])
            result = node.install(module, p["path"], p["expected_sha256"], p["backup"], mode,
                                  staged=p["staged"], staged_sha256=p["staged_sha256"], content=p["content"])
        else:
            result = node.discard(module, p["path"], p["staged"])
    except node.NodeError as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    module.exit_json(changed=p["op"] == "install", **result)


if __name__ == "__main__":
    main()
