#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: containerd_config
short_description: Merge settings into containerd's config.toml, never overwrite it
version_added: 0.1.0
description:
  - Reads the existing containerd configuration file, changes only the keys it is asked to and keeps
    everything else (comments, key order, unknown sections, third-party runtimes such as C(nvidia)) byte for byte.
  - Knows where each setting lives in every containerd config version. Version 1 (no C(version) key,
    C([plugins.cri]), containerd 1.x legacy), version 2 (C(plugins."io.containerd.grpc.v1.cri"), containerd 1.3 to 1.7),
    version 3 (containerd 2.0 to 2.2, C(plugins."io.containerd.cri.v1.images") and C(plugins."io.containerd.cri.v1.runtime"))
    and version 4 (containerd 2.3 and later, same CRI paths as version 3).
  - The version comes from the file. A missing or empty file starts from C(containerd config default) of the
    node's binary. A file without a C(version) key is version 1, as containerd reads it; if it holds no
    plugin tables at all (the Docker package's default file) the module adds the C(version) key of the installed
    containerd, which changes nothing else.
  - Validates the result with the node's binary (C(containerd --config <candidate> config dump)) before the file is
    replaced, also in check mode, and fails unless every requested value is the effective one and the CRI plugin is
    enabled (disabled with O(disable_cri=true)). containerd 2.x only warns about (and ignores) the CRI keys of a version 1 file; that is a failure here
    unless O(migrate=true).
  - B(Where the work runs.) This is an action plugin. The TOML merge runs on the controller (the Python library
    C(tomlkit) is needed there only). On the node it runs the helper module M(kubeforge.cluster.containerd_config_node),
    which needs only python3, at most three times per task (inspect; C(config dump) of the candidate; install of that
    same candidate), once for a file that is already as requested; a C(migrate) that uses C(containerd config migrate)
    adds one run.
  - The file is written atomically in its own directory, keeping owner and mode, only when it is still what was read
    (a change by another writer in between makes the task read and merge again); on any failure it is left untouched.
    C(changed) compares the data, not the text, so a file that already holds the values is not rewritten.
    A symlink is followed to the regular file it points to (the link stays); a link to anything else is refused.
  - B(Credentials.) Values under the keys C(password), C(auth), C(identitytoken), C(token), C(registrytoken),
    C(secret), C(private_key) and O(secret_keys), in the request and in the file, never appear in the result, in
    warnings, in errors or in the diff (masked as C(********) on both sides). A failure names the key or line, never
    the file's content. A new file that holds credentials is created with mode C(0600).
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - The candidate is still validated with C(containerd config dump) on the node; only the final write is skipped.
  diff_mode:
    support: full
options:
  path:
    description:
      - The containerd configuration file, an absolute path. A symlink is followed to the regular file it points to.
    type: str
    default: /etc/containerd/config.toml
  sandbox_image:
    description:
      - The pause (sandbox) image, for example C(registry.k8s.io/pause:3.10).
      - Versions 1 and 2 C(sandbox_image) of the CRI plugin; versions 3 and 4 C(pinned_images.sandbox)
        of C(io.containerd.cri.v1.images).
    type: str
  systemd_cgroup:
    description:
      - Sets C(options.SystemdCgroup) of every runc runtime (C(runtime_type) C(io.containerd.runc.v2) or
        C(io.containerd.runc.v1)), creating the default C(runc) runtime when the file has none.
      - Must match the kubelet's C(cgroupDriver) (C(true) for C(systemd)).
    type: bool
  registry_config_path:
    description:
      - The directory of per-registry C(hosts.toml) files, for example C(/etc/containerd/certs.d), written to
        C(registry.config_path) of the CRI (images) plugin.
      - containerd refuses to load the CRI plugin when legacy C(registry.mirrors) or C(registry.configs.<host>.tls)
        tables exist as well; the module fails with instructions to move them to C(hosts.toml) files.
    type: str
  runtimes:
    description:
      - Runtimes to add or update, by name (the Kubernetes RuntimeClass handler), for example C(kata) or C(nvidia).
      - Each value is a dictionary of runtime keys; C(options) is merged into the runtime's C(options) table,
        the other keys replace the file's values. Runtimes not named here are kept as they are.
      - "Known keys: C(runtime_type) (required for a new runtime, for example C(io.containerd.kata.v2)),
        C(runtime_path), C(options) (dict, for example C(BinaryName), C(ConfigPath), C(SystemdCgroup)),
        C(pod_annotations) and C(container_annotations) (lists of annotation prefixes passed to the runtime),
        C(privileged_without_host_devices), C(privileged_without_host_devices_all_devices_allowed),
        C(base_runtime_spec), C(cni_conf_dir), C(cni_max_conf_num), C(snapshotter), C(sandboxer)
        (version 3+) or C(sandbox_mode) (version 2), C(io_type), C(cgroup_writable). Anything else goes through O(merge)."
    type: dict
  default_runtime:
    description:
      - The name of the runtime used when a pod has no RuntimeClass (C(default_runtime_name)); it must be
        C(runc) or a runtime defined in the file or in O(runtimes).
    type: str
  enable_cri:
    description:
      - Remove C(cri) and the CRI plugin ids (C(io.containerd.grpc.v1.cri), C(io.containerd.cri.v1.images),
        C(io.containerd.cri.v1.runtime)) from C(disabled_plugins). The Docker package ships C(disabled_plugins = ["cri"]),
        which makes kubeadm fail with C(unknown service runtime.v1.RuntimeService).
      - With C(false) the list is left as it is.
    type: bool
    default: true
  disable_cri:
    description:
      - Add the CRI plugin to C(disabled_plugins) (C(io.containerd.grpc.v1.cri); C(cri) in a version 1 file, and a short
        C(cri) in a version 2+ file is replaced by the full id, which containerd requires there), so this containerd serves
        no CRI endpoint. For the containerd under Docker Engine on a node whose CRI runtime is cri-dockerd, where a second
        CRI endpoint makes kubeadm stop with "Found multiple CRI endpoints".
      - Validation then requires the CRI plugin to be disabled. Takes precedence over O(enable_cri).
    type: bool
    default: false
  merge:
    description:
      - A nested dictionary deep-merged into the document for anything the other options do not cover.
        Dictionaries become tables, other values replace the file's value. Keys are those of the file's config version.
      - Applied before the other options, which therefore win.
      - Values must be TOML values (strings, numbers, bools, dates, lists, dicts); null and other types fail with
        the key named, nothing is converted to a string.
    type: dict
  secret_keys:
    description:
      - Further key names (case-insensitive) whose values are credentials, in addition to C(password), C(auth),
        C(identitytoken), C(token), C(registrytoken), C(secret) and C(private_key).
    type: list
    elements: str
    default: []
  containerd_path:
    description:
      - The containerd binary on the node, used for C(config default), C(config migrate) and validation, as
        a command name looked up in E(PATH) or an absolute path.
      - A binary that exists but exits non-zero on C(--version) fails the task with its rc, stdout and stderr
        (unless O(validate=false)).
    type: str
    default: containerd
  validate:
    description:
      - Validate the candidate with C(containerd config dump) and check the requested values are effective.
      - Default is C(true) when O(containerd_path) runs on the node and C(false) (with a warning) otherwise.
        With C(true) and no binary the task fails.
    type: bool
  migrate:
    description:
      - When the file's config version is older than the one of the installed containerd, convert it first.
        Version 1 files are converted to version 2 on the controller, keeping comments (containerd's own
        C(config migrate) drops the CRI settings of a version 1 file); on containerd 2.x the result is then
        converted with C(containerd config migrate), which rewrites the file in containerd's layout
        (comments are lost, use O(backup)).
      - With C(false) a version 1 file on containerd 2.x fails validation with an explanation.
    type: bool
    default: false
  backup:
    description: Keep a timestamped copy of the old file next to it when it is replaced.
    type: bool
    default: false
requirements:
  - tomlkit on the controller (nothing on the node but python3)
  - containerd on the node, for validation and for creating a missing file from C(containerd config default)
notes:
  - containerd reads its configuration only at start; restart it when RV(restart_required) is true
    (for example with a handler).
seealso:
  - name: containerd CRI plugin configuration
    description: Every key of the CRI plugin per config version.
    link: https://github.com/containerd/containerd/blob/main/docs/cri/config.md
  - name: containerd registry hosts
    description: The hosts.toml format used with registry_config_path.
    link: https://github.com/containerd/containerd/blob/main/docs/hosts.md
author:
  - kubeforge.cluster contributors (@kubeforge)
"""

EXAMPLES = r"""
- name: Make the Docker-packaged containerd usable by kubeadm
  kubeforge.cluster.containerd_config:
    sandbox_image: registry.k8s.io/pause:3.10
    systemd_cgroup: true
    registry_config_path: /etc/containerd/certs.d
  register: containerd_conf
  notify: Restart containerd

- name: Add Kata Containers as a second runtime, keep runc the default
  kubeforge.cluster.containerd_config:
    runtimes:
      kata:
        runtime_type: io.containerd.kata.v2
        pod_annotations:
          - io.katacontainers.*
        privileged_without_host_devices: true
    default_runtime: runc
  notify: Restart containerd

- name: Set a key no option covers (containerd 2.x layout)
  kubeforge.cluster.containerd_config:
    merge:
      plugins:
        io.containerd.cri.v1.images:
          max_concurrent_downloads: 5
    backup: true

- name: Convert an old version 1 file for containerd 2.x and set the pause image
  kubeforge.cluster.containerd_config:
    sandbox_image: registry.k8s.io/pause:3.10
    migrate: true
    backup: true
"""

RETURN = r"""
changed:
  description: Whether the file's data changed (or would change in check mode).
  returned: always
  type: bool
diff:
  description: The whole file before and after, credentials masked on both sides.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The file as it was (empty when it did not exist).
      type: str
    after:
      description: The file as written (or as it would be written in check mode).
      type: str
    before_header:
      description: The path.
      type: str
    after_header:
      description: The path.
      type: str
restart_required:
  description: True when containerd must be restarted to use the new file (containerd reads it only at start).
  returned: always
  type: bool
config_version:
  description: The config version of the resulting file.
  returned: success
  type: int
  sample: 3
migrated_from:
  description: The version the file had before O(migrate) converted it; null when no migration happened.
  returned: success
  type: int
  sample: 1
backup_file:
  description: The backup of the old file, when O(backup=true) and the file was replaced.
  returned: success
  type: str
  sample: /etc/containerd/config.toml.12345.2026-11-23@14:05:01~
validated:
  description: Whether the candidate was checked with C(containerd config dump).
  returned: success
  type: bool
containerd_version:
  description: The output of C(containerd --version) on the node; null when the binary is missing.
  returned: success
  type: str
  sample: containerd github.com/containerd/containerd/v2 2.1.9+unknown
path:
  description: The configuration file.
  returned: always
  type: str
changed_keys:
  description: The dotted key paths that were added or changed.
  returned: success
  type: list
  elements: str
  sample: ['plugins."io.containerd.cri.v1.images".pinned_images.sandbox']
key_paths:
  description: Where each logical option lives in this config version.
  returned: success
  type: dict
  sample:
    sandbox_image: plugins."io.containerd.cri.v1.images".pinned_images.sandbox
    registry_config_path: plugins."io.containerd.cri.v1.images".registry.config_path
    runtimes: plugins."io.containerd.cri.v1.runtime".containerd.runtimes
    default_runtime: plugins."io.containerd.cri.v1.runtime".containerd.default_runtime_name
values:
  description:
    - The effective values, read from C(containerd config dump) when validated, otherwise from the merged file.
  returned: success
  type: dict
  contains:
    cri_enabled:
      description: No CRI plugin id is in C(disabled_plugins).
      type: bool
    sandbox_image:
      description: The sandbox (pause) image.
      type: str
    systemd_cgroup:
      description: C(SystemdCgroup) of the default runtime.
      type: bool
    registry_config_path:
      description: The hosts.toml directory.
      type: str
    default_runtime:
      description: The default runtime name.
      type: str
    runtimes:
      description: Runtime name to C(runtime_type).
      type: dict
  sample:
    cri_enabled: true
    sandbox_image: registry.k8s.io/pause:3.10
    systemd_cgroup: true
    registry_config_path: /etc/containerd/certs.d
    default_runtime: runc
    runtimes: {runc: io.containerd.runc.v2, kata: io.containerd.kata.v2}
"""
