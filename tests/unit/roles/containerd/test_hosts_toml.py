# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/containerd/templates/hosts.toml.j2 renders valid TOML with the values containerd_registries asks for."""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import FilterModule

ROLE = Path(__file__).resolve().parents[4] / "roles" / "containerd"


def render(host: str, settings: dict) -> str:
    # the template module's environment: trim_blocks on, Ansible's core filters
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True)
    env.filters.update({k: v for k, v in FilterModule().filters().items() if k not in env.filters})
    return env.get_template("hosts.toml.j2").render(item={"key": host, "value": settings})


def test_server_and_mirrors():
    text = render("docker.io", {
        "server": "https://registry-1.example",
        "mirrors": [
            {"url": "https://mirror.lab.invalid:5000", "skip_verify": True},
            {"url": "https://m2.lab.invalid", "capabilities": ["pull"], "ca": "/etc/ca.pem", "override_path": True},
        ],
    })
    data = tomllib.loads(text)
    assert data["server"] == "https://registry-1.example"
    assert data["host"]["https://mirror.lab.invalid:5000"] == {"capabilities": ["pull", "resolve"], "skip_verify": True}
    assert data["host"]["https://m2.lab.invalid"] == {"capabilities": ["pull"], "ca": ["/etc/ca.pem"], "override_path": True}
    assert list(data["host"]) == ["https://mirror.lab.invalid:5000", "https://m2.lab.invalid"]  # order = priority


def test_auth_and_headers_with_awkward_characters():
    password = 'p"a\\ss word\n'
    text = render("private.lab.invalid:5000", {
        "server": "https://private.lab.invalid:5000",
        "ca": ["/a.pem", "/b.pem"],
        "skip_verify": False,
        "auth": {"username": "puller", "password": password},
        "headers": {"X-Meta": ["a", "b\"c"]},
        "mirrors": [{"url": "https://m.lab.invalid", "auth": {"username": "u", "password": "ü"}}],
    })
    data = tomllib.loads(text)
    assert data["ca"] == ["/a.pem", "/b.pem"] and data["skip_verify"] is False
    scheme, token = data["header"]["Authorization"].split(" ", 1)
    assert scheme == "Basic" and base64.b64decode(token).decode() == "puller:" + password
    assert data["header"]["X-Meta"] == ["a", "b\"c"]
    mirror_auth = data["host"]["https://m.lab.invalid"]["header"]["Authorization"]
    assert base64.b64decode(mirror_auth.split(" ", 1)[1]).decode() == "u:ü"


def test_minimal_entry_is_only_the_marker():
    text = render("_default", {})
    assert tomllib.loads(text) == {}
    assert text.startswith("# Managed by kubeforge.cluster.containerd")


@pytest.mark.parametrize("host", ["docker.io", "registry.lab.invalid:5000", "_default"])
def test_marker_is_what_the_pruning_task_looks_for(host):
    tasks = yaml.safe_load((ROLE / "tasks" / "registries.yml").read_text())
    find = next(t for t in tasks if "ansible.builtin.find" in t)["ansible.builtin.find"]
    first_line = render(host, {"server": "https://x.lab.invalid"}).splitlines()[0]
    assert re.match(find["contains"], first_line)
    # and an operator's own file does not carry it
    assert not re.match(find["contains"], "# written by the operator")


def test_registry_changes_never_restart_containerd():
    # containerd reads hosts.toml on every pull: no task of the registry step may notify the restart handler
    tasks = yaml.safe_load((ROLE / "tasks" / "registries.yml").read_text())
    assert [t["name"] for t in tasks if "notify" in t] == []
    assert any("hosts.toml" in t["name"] for t in tasks)
