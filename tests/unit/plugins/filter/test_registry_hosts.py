# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/filter/registry_hosts.py: containerd_registries validated, each hosts.toml rendered as valid TOML."""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.registry_hosts import FilterModule, containerd_registry_files

ROLE = Path(__file__).resolve().parents[4] / "roles" / "containerd"


def render(host, settings):
    return containerd_registry_files({host: settings})[host]["content"]


def error(registries):
    with pytest.raises(AnsibleFilterError) as info:
        containerd_registry_files(registries)
    return str(info.value)


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
    password = 'p"a\\ss word ü'
    files = containerd_registry_files({"private.lab.invalid:5000": {
        "server": "https://private.lab.invalid:5000",
        "ca": ["/a.pem", "/b.pem"],
        "skip_verify": False,
        "auth": {"username": "puller", "password": password},
        "headers": {"X-Meta": ["a", "b\"c"]},
        "mirrors": [{"url": "https://m.lab.invalid", "auth": {"username": "u", "password": "ü"}}],
    }})
    entry = files["private.lab.invalid:5000"]
    assert entry["secret"] is True
    data = tomllib.loads(entry["content"])
    assert data["ca"] == ["/a.pem", "/b.pem"] and data["skip_verify"] is False
    scheme, token = data["header"]["Authorization"].split(" ", 1)
    assert scheme == "Basic" and base64.b64decode(token).decode() == "puller:" + password
    assert data["header"]["X-Meta"] == ["a", "b\"c"]
    mirror_auth = data["host"]["https://m.lab.invalid"]["header"]["Authorization"]
    assert base64.b64decode(mirror_auth.split(" ", 1)[1]).decode() == "u:ü"


def test_only_files_with_credentials_are_secret():
    files = containerd_registry_files({
        "a.lab.invalid": {"server": "https://a.lab.invalid"},
        "b.lab.invalid": {"mirrors": [{"url": "https://m.lab.invalid", "headers": {"X-Token": "t"}}]},
    })
    assert files["a.lab.invalid"]["secret"] is False
    assert files["b.lab.invalid"]["secret"] is True


def test_minimal_entry_is_only_the_marker():
    for settings in ({}, None):
        text = render("_default", settings)
        assert tomllib.loads(text) == {}
        assert text.startswith("# Managed by kubeforge.cluster.containerd")


def test_same_text_as_the_former_template():
    # nodes converged by the earlier hosts.toml.j2 must not see a change
    text = render("registry.lab.invalid", {"server": "https://registry.lab.invalid",
                                           "mirrors": [{"url": "https://mirror.lab.invalid:5000", "skip_verify": True}]})
    assert text == (
        '# Managed by kubeforge.cluster.containerd (containerd_registries["registry.lab.invalid"]): edits are overwritten and this\n'
        "# directory is removed when the host leaves containerd_registries. containerd reads it on each pull, no restart.\n"
        'server = "https://registry.lab.invalid"\n'
        "\n"
        '[host."https://mirror.lab.invalid:5000"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        "  skip_verify = true\n"
    )


@pytest.mark.parametrize("host", ["docker.io", "registry.lab.invalid:5000", "_default", "10.0.0.1:5000", "[fd00::1]:5000"])
def test_marker_is_what_the_pruning_task_looks_for(host):
    tasks = yaml.safe_load((ROLE / "tasks" / "registries.yml").read_text())
    find = next(t for t in tasks if "ansible.builtin.find" in t)["ansible.builtin.find"]
    first_line = render(host, {"server": "https://x.lab.invalid"}).splitlines()[0]
    assert re.match(find["contains"], first_line)
    # and an operator's own file does not carry it
    assert not re.match(find["contains"], "# written by the operator")


@pytest.mark.parametrize("host", [
    "evil.lab.invalid\nserver = \"https://attacker\"",  # would land in hosts.toml as a TOML line
    "https://docker.io", "../etc", "a/b", "", ".hidden", "-x", "host:99999", "bad_name.io",
])
def test_registry_names_that_are_not_host_names_are_refused(host):
    message = error({host: {"server": "https://x.lab.invalid"}})
    assert message.startswith("containerd_registries[%r]: the key must be a registry host name" % host)
    assert "\n" not in message  # the name is quoted with repr: a newline cannot start a line of its own


@pytest.mark.parametrize("settings, fragment", [
    ({"server": "ftp://x"}, "containerd_registries['r.lab'].server: must be an http:// or https:// URL"),
    ({"sever": "https://x"}, "unknown key(s) sever"),
    ({"skip_verify": "yes"}, "skip_verify: must be true or false, got a string"),
    ({"capabilities": ["pull", "fetch"]}, "capabilities: must be a list of pull, resolve, push"),
    ({"ca": "relative.pem"}, "ca[0]: must be an absolute path"),
    ({"mirrors": {"url": "https://m"}}, "mirrors: must be a list"),
    ({"mirrors": [{"capabilities": ["pull"]}]}, "mirrors[0]: needs a url"),
    ({"mirrors": [{"url": "https://m\n[x]"}]}, "mirrors[0].url: contains the control character"),
    ({"headers": {"X-A": "v\r\nInjected: 1"}}, "headers['X-A']: value 0 contains a control character"),
    ({"headers": {"Bad Name": "v"}}, "'Bad Name' is not an HTTP header name"),
    ({"auth": {"username": "u"}}, "auth: must be a dict with exactly the keys username and password"),
    ({"auth": {"username": "u:x", "password": "p"}}, "auth.username: must not contain ':'"),
])
def test_bad_settings_name_the_registry_and_the_key(settings, fragment):
    assert fragment in error({"r.lab": settings})


def test_errors_never_show_a_credential():
    message = error({"r.lab": {"auth": {"username": "u", "password": 12345678}, "headers": {"X-Token": "hunter2\n"}}})
    assert "12345678" not in message and "hunter2" not in message
    message = error({"r.lab": {"headers": {"X-Token": "hunter2\n"}}})
    assert "hunter2" not in message


def test_registries_must_be_a_dict():
    assert "containerd_registries: must be a dict keyed by registry host, got a list" in error(["docker.io"])


def test_filter_is_registered():
    registered = FilterModule().filters()
    assert list(registered) == ["containerd_registry_files"]
    assert registered["containerd_registry_files"]({}) == containerd_registry_files({})


def test_checked_registries_is_the_same_validation_as_data():
    # what the image_tools role reads (checked_registries): the entries as hosts.toml is written from them
    from ansible_collections.kubeforge.cluster.plugins.filter.registry_hosts import checked_registries

    checked = checked_registries({"r.lab": {"ca": "/etc/ssl/r.pem", "auth": {"username": "u", "password": "p"},
                                            "mirrors": [{"url": "https://m.lab"}]}}, "image_tools_registries")
    assert checked == {"r.lab": {"entry": {"ca": ["/etc/ssl/r.pem"], "headers": {"Authorization": "Basic dTpw"}},
                                 "mirrors": [{"url": "https://m.lab", "capabilities": ["pull", "resolve"]}]}}
    with pytest.raises(AnsibleFilterError) as info:
        checked_registries({"r.lab": {"mirrors": [{}]}}, "image_tools_registries")
    assert str(info.value) == "image_tools_registries['r.lab'].mirrors[0]: needs a url"
