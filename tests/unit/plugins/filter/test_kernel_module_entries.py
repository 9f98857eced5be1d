# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/filter/kernel_module_entries.py: names become kernel_modules entries (node_prep's IPVS modules)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.kernel_module_entries import FilterModule, kernel_module_entries


def test_names_become_required_entries_with_the_reason():
    assert kernel_module_entries(["ip_vs", "ip_vs_rr"], "kube-proxy ipvs mode") == [
        {"name": "ip_vs", "required": True, "reason": "kube-proxy ipvs mode"},
        {"name": "ip_vs_rr", "required": True, "reason": "kube-proxy ipvs mode"},
    ]
    assert kernel_module_entries(["nbd"], required=False) == [{"name": "nbd", "required": False}]
    assert kernel_module_entries([]) == []


@pytest.mark.parametrize("names", ["ip_vs", [""], [{"name": "ip_vs"}], None])
def test_anything_but_a_list_of_names_is_refused(names):
    with pytest.raises(AnsibleFilterError, match="needs a list of module names"):
        kernel_module_entries(names)


def test_filter_is_registered():
    registered = FilterModule().filters()
    assert list(registered) == ["kernel_module_entries"]
    assert registered["kernel_module_entries"](["ip_vs"], "x") == kernel_module_entries(["ip_vs"], "x")
