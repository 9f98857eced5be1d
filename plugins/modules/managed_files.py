#!/usr/bin/python
# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: managed_files
short_description: Whole files and directories a role owns, inspected and fixed in one module run
version_added: 0.1.0
description:
  - Ensures each directory of O(directories) exists with its mode and owner, then each file of O(files) holds exactly
    its C(content) with its mode and owner. Everything is inspected first; nothing is written when an entry is invalid
    or an owner is unknown.
  - Decides from data; a file changes when its bytes, mode or owner differ, never because of a timestamp. A file is
    replaced atomically under a lock on its directory; a change another writer made meanwhile fails the task instead
    of being overwritten. With O(backup) the replaced file is kept beside it.
  - One run for what C(ansible.builtin.template) and C(ansible.builtin.copy) do in two per file (a stat, then
    C(ansible.builtin.file) for the attributes) and C(ansible.builtin.file) in one per directory. Render templates on
    the controller with C(lookup('ansible.builtin.template', ...)) and pass the text.
  - The content is shown in C(--diff) output, so do not use this module for private keys or tokens.
  - A managed file may be a symlink to a regular file, which is replaced while the link stays; a link to C(/dev/null),
    a directory or nothing is refused (the collection's symlink rule, C(docs/SECURITY.md)).
author:
  - kubeforge.cluster contributors (@kubeforge)
extends_documentation_fragment:
  - kubeforge.cluster.attributes
  - kubeforge.cluster.attributes.files
attributes:
  check_mode:
    support: full
    details:
      - Reports what would change. An owner that does not exist yet (a package of the same run creates it) is a
        warning and counts as a change.
  diff_mode:
    support: full
    details:
      - Shows each changed file's text before and after, and the attributes of a changed directory.
  safe_file_operations:
    support: full
options:
  files:
    description:
      - The files. Each item has C(path) (absolute), C(content) (the whole text), C(mode) (an octal string, default
        C('0644')), C(owner) and C(group) (names, default C(root)), C(name), a label for RV(changed_names) and
        RV(entries) (default the path), and C(follow) (default V(true)); with C(follow=false) a symlink at C(path)
        is replaced by the file instead of being followed (a unit masked by a link to C(/dev/null) until its file
        is written).
    type: list
    elements: dict
    default: []
  directories:
    description:
      - Directories created before the files (missing parents are created 0755 root). Each item has C(path), C(mode)
        (default C('0755')), C(owner), C(group) and C(name) as for O(files).
    type: list
    elements: dict
    default: []
  backup:
    description: Keep a copy of a file whose content is replaced, beside it with a timestamp.
    type: bool
    default: false
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Write the etcd configuration file and unit, and the data directory, in one run
  kubeforge.cluster.managed_files:
    directories:
      - {path: /var/lib/etcd, owner: etcd, group: etcd, mode: "0700"}
    files:
      - name: config
        path: /etc/etcd/etcd.conf.yml
        content: "{{ lookup('ansible.builtin.template', 'etcd.conf.yml.j2') }}"
      - name: unit
        path: /etc/systemd/system/etcd.service
        content: "{{ lookup('ansible.builtin.template', 'etcd.service.j2') }}"
  register: etcd_files

- name: Restart etcd when its configuration changed
  ansible.builtin.systemd_service:
    name: etcd
    state: restarted
    daemon_reload: "{{ 'unit' in etcd_files.changed_names }}"
  when: etcd_files.changed_names | length > 0
"""

RETURN = r"""
changed_names:
  description: The C(name) of every entry that changed (or would change in check mode), in the order given.
  returned: always
  type: list
  elements: str
  sample: [config]
entries:
  description: Per C(name), the C(path), whether it C(changed), the C(reasons) (C(create), C(content),
    C(mode 0600 -> 0644), C(owner)) and the C(backup_file) when one was made.
  returned: always
  type: dict
  sample: {config: {path: /etc/etcd/etcd.conf.yml, changed: true, reasons: [content]}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeforge.cluster.plugins.module_utils._files import ManagedFileError
from ansible_collections.kubeforge.cluster.plugins.module_utils._managed_files import PartialWriteError, run
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError


def argument_spec():
    return dict(
        files=dict(type="list", elements="dict", default=[]),
        directories=dict(type="list", elements="dict", default=[]),
        backup=dict(type="bool", default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result, diffs = run(module, module.params)
    except PartialWriteError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.written), changed_names=exc.written)
    except (InputError, ManagedFileError) as exc:
        module.fail_json(msg=str(exc), changed=False)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "managed_files", exc.strerror), changed=False)
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
