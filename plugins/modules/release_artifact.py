#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_artifact
short_description: Install a release binary, tarball or package from an artifacts directory or a URL, checksum first
version_added: 0.2.0
description:
  - The collection's one way to install software that comes as a release artifact, which is a single binary, a tar
    archive (members selected, leading directories stripped, each to its own path and mode) or a C(.deb)/C(.rpm)
    package.
  - The source is either O(src), a file on the controller (the air-gapped artifacts directory, for example
    C(/srv/artifacts/crictl-v1.36.0-linux-amd64.tar.gz)) verified against O(checksum) or a checksum list
    O(checksum_file) such as C(SHA256SUMS), or O(url), downloaded by the node into a private temporary directory and
    verified against the required O(checksum).
  - The sha256 is verified before anything on the node changes (on the controller for O(src)); a missing artifact or a
    checksum mismatch fails with a message naming the file and the role variable (O(variable)).
  - Idempotent without transfers. A converged node gets no copy and no download. For O(src) the controller hashes the
    archive's members and the node compares its files with them. For O(url) a small state file in O(state_dir)
    records the artifact's checksum and the hashes it installed, and the installed files are checked against it. A
    binary's own checksum is its content.
  - Each differing file is staged in its destination directory, then all of them are renamed together; if one rename
    fails the others are put back, so either every file of the artifact is replaced or none is. Files whose content
    already matches only get their mode or owner fixed.
  - Packages go through the logic of M(kubeforge.cluster.packages) (installed only when that exact package version
    is not); the state file records which package version an artifact installed.
  - This module runs as an action plugin (controller side for O(src)) plus this module on the node.
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is transferred or installed. Which files would change is exact when the artifact's content is known
        without it (a local artifact, a binary, or a URL recorded in the state file); otherwise the node downloads the
        artifact into a temporary directory to compare, unless a destination file is missing anyway.
  diff_mode:
    support: full
    details:
      - The installed files as path, sha256, mode and owner, before and after (packages as name and version).
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
options:
  src:
    description:
      - The artifact file on the controller, usually C(<artifacts dir>/<release file name>). A relative path is
        searched like the C(copy) module's O(src) (role C(files/), playbook directory).
      - With O(remote_src=true), a file already on the node.
      - Exactly one of O(src) and O(url).
    type: str
  remote_src:
    description: O(src) and O(checksum_file) are on the node, not on the controller.
    type: bool
    default: false
  url:
    description: An C(https) or C(http) URL the node downloads the artifact from. Requires O(checksum).
    type: str
  checksum:
    description: The artifact's sha256, as C(sha256:<64 hex digits>) or the digits alone.
    type: str
  checksum_file:
    description:
      - A checksum list in C(sha256sum) format (C(<hex>  <file name>)), for example the C(SHA256SUMS) beside the
        artifacts; the line whose file name has the artifact's base name is used. On the controller, like O(src).
    type: str
  format:
    description:
      - What the artifact is. V(auto) decides by its name, so C(.tar.gz), C(.tgz), C(.tar), C(.tar.xz) and C(.tar.bz2)
        are V(tar), C(.deb) and C(.rpm) are V(package), anything else is a single V(binary).
    type: str
    choices: [auto, binary, tar, package]
    default: auto
  dest:
    description:
      - For a V(binary), the path to install it at.
      - For a V(tar), the directory members are installed under (at their path after O(strip_components)); required
        unless every entry of O(members) has its own C(dest).
    type: str
  members:
    description:
      - The files of a V(tar) to install, by their path inside the archive after O(strip_components). An entry is that
        path (installed under O(dest)) or a dict with C(name), optional C(dest) (an absolute path) and C(mode).
      - Left out, every regular file of the archive is installed under O(dest), and so is every symbolic link whose
        target stays inside the archive's tree (installed as a link; a link pointing outside is an error). Kata's
        release tarball, for example, links C(configuration.toml) to C(configuration-qemu.toml).
      - A member that is missing or is not a regular file is an error listing what the archive has.
    type: list
    elements: raw
  strip_components:
    description: Leading directory components removed from member paths (like C(tar --strip-components)).
    type: int
    default: 0
  mode:
    description:
      - Mode of the installed files, an octal string such as C("0755"). Default for a V(binary) C(0755); for tar
        members the archive's permission bits without set-id, sticky and group/other write bits.
      - An unquoted YAML number is refused (C(0755) would arrive as the decimal 493).
    type: raw
  owner:
    description: Owner of the installed files (name or number).
    type: str
    default: root
  group:
    description: Group of the installed files (name or number).
    type: str
    default: root
  variable:
    description:
      - The name of the role variable the source came from (for example C(crictl_artifacts_dir) or C(crictl_url)).
        Every error message starts with it, so the user sees which setting to fix; the calling role provides it.
      - Defaults to the option name, V(src) or V(url).
    type: str
  state_dir:
    description: Where the node keeps the state files of installed artifacts.
    type: str
    default: /var/lib/kubeforge/artifacts
  timeout:
    description: Seconds the download may wait for the server.
    type: int
    default: 60
  validate_certs:
    description: Verify the server's TLS certificate for O(url).
    type: bool
    default: true
  allow_downgrade:
    description: A V(package) artifact may install an older version than the installed one.
    type: bool
    default: false
  expected_files:
    description:
      - Set by the action plugin, not by tasks (a task that sets it fails). For O(src), the sha256 and mode of each
        file the artifact installs, computed on the controller.
    type: dict
  compare_only:
    description:
      - Set by the action plugin, not by tasks. Only compare the node's files with O(expected_files) and report
        whether the artifact must be transferred.
    type: bool
    default: false
notes:
  - Roles use it with their own C(<role>_artifacts_dir), C(<role>_url) and C(<role>_checksum) variables and pass the
    variable's name in O(variable); see C(docs/DEVELOPING.md), "Installing software".
seealso:
  - module: kubeforge.cluster.packages
"""

EXAMPLES = r"""
- name: Install crictl from the artifacts directory (air-gapped)
  kubeforge.cluster.release_artifact:
    src: "{{ crictl_artifacts_dir }}/crictl-v1.36.0-linux-amd64.tar.gz"
    checksum_file: "{{ crictl_artifacts_dir }}/SHA256SUMS"
    members: [crictl]
    dest: /usr/local/bin
    variable: crictl_artifacts_dir

- name: Install crictl from its release URL
  kubeforge.cluster.release_artifact:
    url: "{{ crictl_url }}"
    checksum: "{{ crictl_checksum }}"
    members: [crictl]
    dest: /usr/local/bin
    variable: crictl_url

- name: Install the containerd binaries of a release tarball (bin/containerd, bin/ctr, ...)
  kubeforge.cluster.release_artifact:
    src: /srv/artifacts/containerd-2.1.4-linux-amd64.tar.gz
    checksum_file: /srv/artifacts/SHA256SUMS
    strip_components: 1
    dest: /usr/local/bin
    variable: containerd_artifacts_dir
  notify: Restart containerd

- name: Install runc, a single binary, under another name
  kubeforge.cluster.release_artifact:
    src: /srv/artifacts/runc.amd64
    checksum: sha256:e8e9e1a1d4c5f3e7b1a8f0d0c5b6a7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4
    dest: /usr/local/sbin/runc

- name: Install a Debian package from the artifacts directory
  kubeforge.cluster.release_artifact:
    src: /srv/artifacts/cri-tools_1.36.0-1.1_amd64.deb
    checksum_file: /srv/artifacts/SHA256SUMS
    variable: crictl_artifacts_dir
"""

RETURN = r"""
changed:
  description: Whether a file was (or would be) installed or its mode or owner fixed, or a package installed.
  returned: always
  type: bool
  sample: true
installed:
  description: Paths whose content was (or would be) replaced or created; for a package, its name.
  returned: always
  type: list
  elements: str
  sample: [/usr/local/bin/crictl]
checksum:
  description: The sha256 of the artifact.
  returned: always
  type: str
  sample: 8f2e2a1c3d4b5a6978e1f0d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3a
reasons:
  description: Why something changed (or would), one line per file; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["/usr/local/bin/crictl: content differs from crictl-v1.36.0-linux-amd64.tar.gz"]
files:
  description: The sha256 of each installed file, by path (C(link:<target>) for a symbolic link of the archive).
  returned: for binaries and archives
  type: dict
  sample: {"/usr/local/bin/crictl": "0f3e1c2d4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"}
package:
  description: The package an artifact of format V(package) holds.
  returned: for packages
  type: dict
  sample: {"name": "cri-tools", "version": "1.36.0-1.1"}
transferred:
  description: Whether the artifact was copied to or downloaded by the node in this run (false on a converged node).
  returned: always
  type: bool
  sample: false
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._artifact_install import Installer, Request, resolve_ids
from ansible_collections.kubeforge.cluster.plugins.module_utils._artifacts import (
    ArtifactError,
    argument_spec,
    detect_format,
    parse_source,
    parse_targets,
)
from ansible_collections.kubeforge.cluster.plugins.module_utils._packages import PackagesError, manager_for
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError, absolute_path, require_int


def build_request(params):
    """The validated request; raises InputError or ArtifactError."""
    variable, checksum = parse_source(params)
    if params.get("src") is not None and params.get("url") is None:
        if not params["remote_src"] and params.get("expected_files") is None and not params["compare_only"]:
            raise InputError("remote_src", "the module was called without its action plugin; with src on the node set remote_src=true")
        absolute_path("src", params["src"])
        if checksum is None:
            absolute_path("checksum_file", params["checksum_file"])
    absolute_path("state_dir", params["state_dir"])
    require_int("timeout", params["timeout"], minimum=1)
    name = os.path.basename((params.get("url") or params["src"]).split("?", 1)[0].rstrip("/"))
    fmt = detect_format(name, params["format"])
    targets = parse_targets(params, fmt)
    uid, gid = resolve_ids(params["owner"], params["group"])
    return Request(params, variable, checksum, fmt, targets, uid, gid)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        request = build_request(module.params)
    except (InputError, ArtifactError) as exc:
        module.fail_json(msg="%s" % exc)

    def packages():
        try:
            return manager_for(module)
        except PackagesError as exc:
            raise ArtifactError("%s: %s" % (request.variable, exc.msg)) from None

    installer = Installer(module, request, package_manager=packages)
    try:
        result = installer.run(expected=module.params["expected_files"], inspect_only=module.params["compare_only"])
    except ArtifactError as exc:
        module.fail_json(msg=exc.msg, checksum=request.checksum, **exc.extra)
    except (OSError, InputError) as exc:
        module.fail_json(msg="%s: installing %s failed: %s" % (request.variable, request.artifact_name, exc), checksum=request.checksum)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
