# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apiserver proxy's upstreams from the role's variables: an explicit list, or the control-plane group's hosts.

The filter entry points only; the implementation is ``plugins/plugin_utils/apiserver_proxy_upstreams.py`` and is imported on a filter's first
call (see ``plugin_utils/_lazy_filters.py``: Ansible loads every filter file of the collection in each worker).
"""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.plugin_utils._lazy_filters import LazyFilters

_LAZY = LazyFilters("apiserver_proxy_upstreams", ("apiserver_proxy_upstreams",))


class FilterModule:
    def filters(self):
        return _LAZY.filters()


def __getattr__(name):
    return _LAZY.attribute(name)
