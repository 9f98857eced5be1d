#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge settings into Docker's daemon.json as data, validate them, say whether dockerd needs a restart
version_added: 0.2.0
description:
  - Reads C(daemon.json), merges the request into its data and keeps every other key (and the file's key order).
    O(settings) is deep-merged (objects such as C(log-opts) merge key by key; lists and plain values replace the
    file's), O(exec_opts) replaces or adds C(exec-opts) entries by option name (C(native.cgroupdriver=...)) and keeps
    the others, O(remove) deletes top-level keys.
  - A file that is not a JSON object (invalid JSON, duplicate keys, not UTF-8) is refused and left untouched; the message
    names the file and the line.
  - Before anything is written, the result is checked the way dockerd checks it at start. Value types (every
    C(log-opts) value a string, C(exec-opts) a list of strings, a known cgroup driver, mirror URLs). No key that the
    running dockerd also gets as a command-line flag (Debian's unit passes C(-H) and C(--containerd); dockerd refuses
    to start when a setting is in both places). Then C(dockerd --validate --config-file <candidate>) when the
    installed dockerd has it (Docker 23 and later); an older dockerd (Debian 12's 20.10) gets the keys checked
    against its own C(dockerd --help) flags instead.
  - C(changed) compares data, not text. The file is replaced atomically (compare-and-replace under a lock, optional
    backup); a new file is mode 0644, or 0600 when it holds credentials.
  - RV(restart_required) and RV(reload_required) tell what dockerd needs. C(debug), C(labels), C(live-restore),
    C(max-concurrent-downloads), C(max-concurrent-uploads), C(max-download-attempts), C(shutdown-timeout),
    C(insecure-registries), C(registry-mirrors), C(allow-nondistributable-artifacts), C(runtimes), C(default-runtime)
    and C(default-shm-size) are applied on SIGHUP (C(systemctl reload docker)); every other key (C(exec-opts),
    C(log-driver), C(log-opts), C(storage-driver), C(data-root), ...) only at start.
  - Credentials (values under keys such as C(password) or C(token), and the user information of URLs such as
    C(proxies.http-proxy)) are masked in the diff and in RV(config), and hidden from Ansible's output.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Every check, C(dockerd --validate) included, runs in check mode; only the write is skipped.
  diff_mode:
    support: full
    details:
      - The file before and after as JSON, with credentials masked.
options:
  path:
    description: The daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - Top-level daemon.json keys and their values, for example C(log-driver), C(log-opts), C(registry-mirrors),
        C(insecure-registries), C(storage-driver). Objects are merged into the file's objects, anything else replaces
        the file's value.
    type: dict
  exec_opts:
    description:
      - The C(exec-opts) entries by option name, for example C(native.cgroupdriver) with the value C(systemd) (the cgroup
        driver must be the kubelet's). An entry of that name is replaced in place, other entries stay.
    type: dict
  remove:
    description: Top-level keys to delete from the file (a key cannot be set and removed by one task).
    type: list
    elements: str
    default: []
  validate:
    description:
      - Validate with the node's dockerd (C(dockerd --validate), or its C(--help) flags on Docker before 23).
      - The value type and flag-conflict checks always run. Without a dockerd binary only they run, with a warning.
    type: bool
    default: true
  dockerd_path:
    description: The dockerd binary used for validation (a name is looked up in C(PATH) and C(/usr/sbin)).
    type: str
    default: dockerd
  backup:
    description: Keep a timestamped copy of the previous file next to it when it is replaced.
    type: bool
    default: false
notes:
  - Act on RV(restart_required) with C(systemctl restart docker) and on RV(reload_required) with C(systemctl reload
    docker), for example from one handler that picks the state from the registered result.
seealso:
  - name: dockerd daemon configuration file
    description: Every key of daemon.json and which ones are reloaded on SIGHUP.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Merge the Kubernetes settings into daemon.json
  kubeforge.cluster.docker_daemon_config:
    exec_opts:
      native.cgroupdriver: systemd
    settings:
      log-driver: json-file
      log-opts:
        max-size: 100m
        max-file: "5"
      registry-mirrors:
        - https://mirror.example.internal
    backup: true
  register: daemon_json
  notify: Apply the Docker daemon configuration

# handlers/main.yml
- name: Apply the Docker daemon configuration
  ansible.builtin.systemd_service:
    name: docker
    state: "{{ 'restarted' if daemon_json.restart_required else 'reloaded' }}"

- name: Forget a key an earlier run set
  kubeforge.cluster.docker_daemon_config:
    remove: [insecure-registries]
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
changed_keys:
  description: Top-level keys whose value changed (or would change).
  returned: always
  type: list
  elements: str
  sample: [exec-opts, log-opts]
restart_required:
  description: True when a changed key is read by dockerd only at start (C(systemctl restart docker)).
  returned: always
  type: bool
reload_required:
  description: True when every changed key is applied on SIGHUP (C(systemctl reload docker)) and no restart is needed.
  returned: always
  type: bool
daemon_action:
  description: What dockerd needs after this change, in words.
  returned: always
  type: str
  sample: "restart: dockerd reads exec-opts only at start"
config:
  description: The resulting daemon configuration (credentials masked).
  returned: always
  type: dict
  sample: {"exec-opts": ["native.cgroupdriver=systemd"], "log-driver": "json-file"}
validated_with:
  description: How the result was validated.
  returned: always
  type: str
  sample: dockerd --validate
backup_file:
  description: The copy of the previous file.
  returned: when O(backup=true) and the file was replaced
  type: str
"""

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._docker_daemon_config import DaemonConfigError, NodeOps, run
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import ManagedFileError, read_bytes, replace_file, resolve_managed
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path, not_option

# Where running processes are listed (unit tests point it at a fake tree).
PROC = "/proc"


def argument_spec():
    return dict(
        path=dict(type="path", default="/etc/docker/daemon.json"),
        settings=dict(type="dict"),
        exec_opts=dict(type="dict"),
        remove=dict(type="list", elements="str", default=[]),
        validate=dict(type="bool", default=True),
        dockerd_path=dict(type="str", default="dockerd"),
        backup=dict(type="bool", default=False),
    )


class ModuleOps(NodeOps):
    def __init__(self, module):
        self.module = module
        self.tmpdir = None

    def read(self, path):
        return read_bytes(path)

    def dockerd(self):
        return self.module.get_bin_path(self.module.params["dockerd_path"], opt_dirs=["/usr/sbin", "/usr/bin", "/usr/local/bin"])

    def run(self, argv):
        return self.module.run_command(argv, environ_update={"LANGUAGE": "C", "LC_ALL": "C"})

    def running_dockerd_args(self):
        try:
            pids = [name for name in os.listdir(PROC) if name.isdigit()]
        except OSError:
            return None
        for pid in pids:
            try:
                with open(os.path.join(PROC, pid, "cmdline"), "rb") as handle:
                    argv = handle.read().decode("utf-8", "replace").split("\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == "dockerd":
                return [arg for arg in argv[1:] if arg]
        return None

    def candidate(self, path, text):
        # a private directory: the candidate may hold credentials
        if self.tmpdir is None:
            self.tmpdir = tempfile.mkdtemp(prefix=".kubeforge-daemon-json-", dir=os.path.dirname(path) if os.path.isdir(os.path.dirname(path)) else None)
            os.chmod(self.tmpdir, 0o700)
        candidate = os.path.join(self.tmpdir, os.path.basename(path))
        with open(candidate, "w", encoding="utf-8") as handle:
            handle.write(text)
        return candidate

    def write(self, path, text, expected, mode, backup):
        return replace_file(self.module, path, text, mode=mode, expected=expected, backup=backup)

    def hide(self, secrets):
        self.module.no_log_values.update(secrets)

    def cleanup(self):
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = dict(module.params)
    ops = ModuleOps(module)
    try:
        params["path"] = resolve_managed(absolute_path("path", params["path"]))
        not_option("dockerd_path", params["dockerd_path"])
        result = run(params, ops, check_mode=module.check_mode)
    except DaemonConfigError as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    except (InputError, ManagedFileError) as exc:
        module.fail_json(msg=str(exc))
    finally:
        ops.cleanup()
    for warning in result.pop("warnings"):
        module.warn(warning)
    diff = result.pop("diff", None)
    if module._diff and diff is not None:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
