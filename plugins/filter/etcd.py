# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the etcd role: the members from the inventory, each member's bootstrap plan, its config file.

The filter entry points only; the implementation is ``plugins/plugin_utils/etcd.py`` and is imported on a filter's first
call (see ``plugin_utils/_lazy_filters.py``: Ansible loads every filter file of the collection in each worker).
"""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.plugin_utils._lazy_filters import LazyFilters

_LAZY = LazyFilters(
    "etcd",
    ("etcd_members", "etcd_running", "etcd_plan", "etcd_restarts", "etcd_config", "etcd_member_certificates",
     "etcd_certificates_changed"),
)


class FilterModule:
    def filters(self):
        return _LAZY.filters()


def __getattr__(name):
    return _LAZY.attribute(name)
