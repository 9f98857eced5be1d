# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's upstreams: explicit list or the control-plane group, each entry checked and named by its variable."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.apiserver_proxy_upstreams import FilterModule, apiserver_proxy_upstreams

HOSTVARS = {
    "cp1": {"ansible_host": "10.0.0.11"},
    "cp2": {"ansible_host": "10.0.0.12", "apiserver_proxy_upstream_address": "192.168.7.12"},
    "cp3.example.internal": {},
    "cp9": {"ansible_host": "bad host"},
}


def test_registered():
    registered = FilterModule().filters()["apiserver_proxy_upstreams"]
    assert registered([], ["cp1"], {"cp1": {"ansible_host": "10.0.0.1"}}, 5443) == apiserver_proxy_upstreams(
        [], ["cp1"], {"cp1": {"ansible_host": "10.0.0.1"}}, 5443)


def test_from_the_group():
    assert apiserver_proxy_upstreams([], ["cp1", "cp2", "cp3.example.internal"], HOSTVARS, 5443) == [
        {"name": "cp1", "host": "10.0.0.11", "port": 5443},
        {"name": "cp2", "host": "192.168.7.12", "port": 5443},
        {"name": "cp3.example.internal", "host": "cp3.example.internal", "port": 5443},
    ]
    assert apiserver_proxy_upstreams([], [], HOSTVARS, 5443) == []


def test_explicit_list_wins():
    assert apiserver_proxy_upstreams(["10.1.0.1", "[fd00::2]:7443", {"host": "api.example.internal", "name": "lb"}],
                                     ["cp1"], HOSTVARS, 5443) == [
        {"name": "10.1.0.1", "host": "10.1.0.1", "port": 5443},
        {"name": "fd00::2", "host": "fd00::2", "port": 7443},
        {"name": "lb", "host": "api.example.internal", "port": 5443},
    ]


@pytest.mark.parametrize("explicit, hosts, port, message", [
    (["10.1.0.1", "not an address"], [], 5443, "apiserver_proxy_upstreams[1]: 'not an address' is neither an IP address nor a DNS name"),
    ([], ["cp1", "cp9"], 5443, "ansible_host of cp9: 'bad host' is neither an IP address nor a DNS name"),
    ([], ["cp1"], "5443", "apiserver_proxy_backend_port: must be an integer"),
    ("10.1.0.1", [], 5443, "apiserver_proxy_upstreams: must be a list"),
    ([], ["cp1"], 70000, "apiserver_proxy_backend_port: must be at most 65535"),
])
def test_bad_entries_name_their_variable(explicit, hosts, port, message):
    with pytest.raises(AnsibleFilterError) as error:
        apiserver_proxy_upstreams(explicit, hosts, HOSTVARS, port)
    assert message in str(error.value)
