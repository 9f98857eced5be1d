# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One concept, one name: every role that declares a collection-wide ``kubeforge_*`` variable declares it with the same
default and type, in its defaults and in every entry point of its argument specs, with a description; and every role
that uses one of the shared variables declares it (a role used alone must not depend on another role's defaults)."""

from __future__ import annotations

from pathlib import Path

import re

import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
# The variables several roles share (docs/DEVELOPING.md): one name and one default across the collection.
SHARED = ("kubeforge_cri_socket", "kubeforge_sandbox_image", "kubeforge_cgroup_driver", "kubeforge_container_runtime",
          "kubeforge_kata_enabled")


def declarations(roles_dir):
    """``[(role, where, name, option)]`` of every kubeforge_* variable in defaults and argument specs."""
    found = []
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        defaults_file = role / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
        specs_file = role / "meta" / "argument_specs.yml"
        specs = (yaml.safe_load(specs_file.read_text()) or {}).get("argument_specs", {}) if specs_file.exists() else {}
        for name, value in defaults.items():
            if name.startswith("kubeforge_"):
                found.append((role.name, "defaults/main.yml", name, {"default": value}))
        for entry, spec in specs.items():
            for name, option in (spec.get("options") or {}).items():
                if name.startswith("kubeforge_"):
                    found.append((role.name, "argument_specs %s" % entry, name, option))
    return found


def uses(roles_dir):
    """``{(role, name)}`` of every shared variable a role's tasks, handlers, vars or templates read."""
    found = set()
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        for folder in ("tasks", "handlers", "vars", "templates"):
            for path in (role / folder).rglob("*") if (role / folder).is_dir() else ():
                if path.is_file():
                    text = path.read_text()
                    found.update((role.name, name) for name in SHARED if re.search(r"\b%s\b" % name, text))
    return found


def undeclared_uses(roles_dir):
    declared = {(role, name) for role, where, name, _option in declarations(roles_dir) if where.startswith("argument_specs")}
    problems = []
    for role, name in sorted(uses(roles_dir)):
        if (role, name) not in declared:
            problems.append("%s uses %s but does not declare it in meta/argument_specs.yml" % (role, name))
    return problems


def inconsistencies(roles_dir):
    problems = []
    by_name = {}
    found = declarations(roles_dir)
    for role, where, name, option in found:
        by_name.setdefault(name, []).append((role, where, option))
        if where.startswith("argument_specs") and not (option.get("type") and option.get("description")):
            problems.append("%s (%s): %s has no type or description" % (role, where, name))
    specified = {(role, name) for role, where, name, _option in found if where.startswith("argument_specs")}
    for role, where, name, _option in found:
        if where == "defaults/main.yml" and (role, name) not in specified:
            problems.append("%s declares %s in defaults/main.yml but not in meta/argument_specs.yml" % (role, name))
    for name, places in sorted(by_name.items()):
        if len({repr(option.get("default")) for _role, _where, option in places}) > 1:
            problems.append("%s has different defaults: %s" % (name, ", ".join("%s %s: %r" % (r, w, o.get("default")) for r, w, o in places)))
        if len({option["type"] for _role, where, option in places if where.startswith("argument_specs") and "type" in option}) > 1:
            problems.append("%s has different types: %s" % (name, ", ".join("%s %s: %s" % (r, w, o.get("type")) for r, w, o in places)))
    return problems


def test_the_collections_roles_agree():
    assert any(name.startswith("kubeforge_") for _role, _where, name, _option in declarations(ROLES))
    assert inconsistencies(ROLES) == []


def test_every_role_declares_the_shared_variables_it_uses():
    used = uses(ROLES)
    # the runtime and kubeadm roles read the CRI endpoint, the cgroup driver and the sandbox image
    assert {("containerd", "kubeforge_cri_socket"), ("kubeadm", "kubeforge_cri_socket"), ("kubeadm", "kubeforge_sandbox_image"),
            ("containerd", "kubeforge_sandbox_image"), ("kubeadm", "kubeforge_cgroup_driver")} <= used
    assert undeclared_uses(ROLES) == []


def test_a_role_using_an_undeclared_shared_variable_is_reported(tmp_path):
    (tmp_path / "kubelet" / "tasks").mkdir(parents=True)
    (tmp_path / "kubelet" / "meta").mkdir()
    (tmp_path / "kubelet" / "tasks" / "main.yml").write_text("- ansible.builtin.debug:\n    msg: '{{ kubeforge_kata_enabled }} {{ kubeforge_cri_socket }}'\n")
    (tmp_path / "kubelet" / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {"main": {"options": {
        "kubeforge_cri_socket": {"type": "str", "default": "", "description": "The CRI endpoint."}}}}}))
    assert undeclared_uses(tmp_path) == ["kubelet uses kubeforge_kata_enabled but does not declare it in meta/argument_specs.yml"]


def test_disagreeing_roles_are_reported(tmp_path):
    for role, default, kind in (("runtime", "systemd", "str"), ("kubelet", "cgroupfs", "str"), ("other", "systemd", "raw")):
        (tmp_path / role / "defaults").mkdir(parents=True)
        (tmp_path / role / "meta").mkdir()
        (tmp_path / role / "defaults" / "main.yml").write_text("kubeforge_cgroup_driver: %s\nkubeforge_extra: 1\n" % default)
        (tmp_path / role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {"main": {"options": {
            "kubeforge_cgroup_driver": {"type": kind, "default": default, "description": "The cgroup driver."}}}}}))
    problems = inconsistencies(tmp_path)
    assert "kubelet declares kubeforge_extra in defaults/main.yml but not in meta/argument_specs.yml" in problems
    assert any(p.startswith("kubeforge_cgroup_driver has different defaults: kubelet defaults/main.yml: 'cgroupfs'") for p in problems)
    assert any(p.startswith("kubeforge_cgroup_driver has different types:") for p in problems)
