# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""buildkitd.toml for the image_tools role: the containerd worker, garbage collection and the registry settings of

The filter entry points only; the implementation is ``plugins/plugin_utils/buildkitd_config.py`` and is imported on a filter's first
call (see ``plugin_utils/_lazy_filters.py``: Ansible loads every filter file of the collection in each worker).
"""

from __future__ import annotations

from ansible_collections.kubeforge.cluster.plugins.plugin_utils._lazy_filters import LazyFilters

_LAZY = LazyFilters("buildkitd_config", ("buildkitd_config",))


class FilterModule:
    def filters(self):
        return _LAZY.filters()


def __getattr__(name):
    return _LAZY.attribute(name)
