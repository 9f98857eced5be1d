# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role rules of docs/DEVELOPING.md, checked on every role's files: every variable declared and documented,
one name for the CRI endpoint, no Jinja programs, no tasks that only compute values or only report a change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
ALL_ROLES = sorted(p.name for p in ROLES.iterdir() if (p / "tasks" / "main.yml").exists())
# The roles reworked to these rules; add a role here once it follows them (every role should).
CHECKED_ROLES = ["apiserver_proxy", "containerd", "cri_dockerd", "crictl", "etcd", "image_tools", "kata", "kubeadm", "node_prep"]


def load(path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


def tasks_of(role):
    """Every task of every task file (blocks flattened), with its file name."""
    found = []

    def walk(items, name):
        for task in items or []:
            found.append((name, task))
            for key in ("block", "rescue", "always"):
                walk(task.get(key), name)

    for path in sorted((ROLES / role / "tasks").glob("*.yml")):
        walk(load(path), path.name)
    return found


def options(role):
    """The options of every entry point (a role's ``doctor`` entry point declares its own)."""
    merged = {}
    for spec in load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"].values():
        merged.update(spec.get("options") or {})
    return merged


@pytest.mark.parametrize("role", CHECKED_ROLES)
def test_every_default_is_declared_typed_and_documented(role):
    declared = options(role)
    readme = (ROLES / role / "README.md").read_text()
    for name in load(ROLES / role / "defaults" / "main.yml") or {}:
        assert name in declared, "%s: %s is in defaults/main.yml but not in meta/argument_specs.yml" % (role, name)
    for name, spec in declared.items():
        assert "type" in spec, "%s: %s has no type in meta/argument_specs.yml" % (role, name)
        assert "`%s`" % name in readme, "%s: %s is not in the README table" % (role, name)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_the_cri_endpoint_has_one_name(role):
    text = "\n".join(p.read_text() for p in (ROLES / role).rglob("*.yml"))
    for old in ("containerd_cri_socket_preferred", "crictl_runtime_endpoint", "crictl_cri_socket_preferred"):
        assert old not in text, "%s still uses %s (the endpoint is kubeforge_cri_socket)" % (role, old)
    assert not re.search(r"set_fact:\s*\n\s*containerd_cri_socket:", text)


@pytest.mark.parametrize("role", CHECKED_ROLES)
def test_roles_read_the_endpoint_from_kubeforge_cri_socket(role):
    probes = [task for dummy, task in tasks_of(role) if "kubeforge.cluster.cri_socket" in task]
    if probes:
        assert "kubeforge_cri_socket" in options(role), "%s probes the CRI endpoint but does not declare kubeforge_cri_socket" % role
        for task in probes:
            preferred = task["kubeforge.cluster.cri_socket"]["preferred"]
            variable = re.fullmatch(r"\{\{ (\w+) \}\}", preferred).group(1)
            assert load(ROLES / role / "vars" / "main.yml")[variable] == "{{ kubeforge_cri_socket | default('') }}"


@pytest.mark.parametrize("role", CHECKED_ROLES)
def test_no_jinja_programs_and_no_value_only_tasks(role):
    for path in list((ROLES / role).rglob("*.yml")) + list((ROLES / role).rglob("*.j2")):
        text = path.read_text()
        assert "set _ =" not in text and ".append(" not in text, "%s: a Jinja program; write a filter plugin" % path
        assert "from_json" not in text or "regex_replace" not in text, "%s: a dict built from text; write a filter" % path
    assert not list((ROLES / role).glob("files/*.py")), "%s ships a Python file: make it a filter or lookup plugin" % role
    for name, task in tasks_of(role):
        assert "ansible.builtin.set_fact" not in task, "%s/%s: %r only computes values; use vars/main.yml" % (role, name, task["name"])
        if "ansible.builtin.debug" in task:
            assert "notify" not in task, "%s/%s: %r reports a change to notify a handler" % (role, name, task["name"])


@pytest.mark.parametrize("role", CHECKED_ROLES)
def test_loops_over_secrets_are_no_log(role):
    # a loop item is printed at -v: a task whose loop or content touches registry settings loops over names only
    for name, task in tasks_of(role):
        loop = str(task.get("loop", ""))
        assert "dict2items" not in loop, "%s/%s: %r loops over a dict (its values are printed at -v)" % (role, name, task["name"])
        if "content" in str(task.get("ansible.builtin.copy", {})) and "registry" in str(task):
            assert "no_log" in task, "%s/%s: %r writes registry settings without no_log" % (role, name, task["name"])
