# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side decisions of kubeadm part 2, from what the nodes reported (``kubeforge.cluster.kubeadm_node_state``).

The filter entry points only; the implementation is ``plugins/plugin_utils/kubeadm_cluster.py`` and is imported on a filter's first
call (see ``plugin_utils/_lazy_filters.py``: Ansible loads every filter file of the collection in each worker).
"""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.plugin_utils._lazy_filters import LazyFilters

_LAZY = LazyFilters(
    "kubeadm_cluster",
    ("kubeadm_join_plan", "kubeadm_node_updates", "kubeadm_node_settings", "kubeadm_mask_secrets",
     "kubeadm_iptables_cleanup"),
)


class FilterModule:
    def filters(self):
        return _LAZY.filters()


def __getattr__(name):
    return _LAZY.attribute(name)
