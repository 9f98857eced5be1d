# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter entry points that import their implementation on the first call.

To resolve any ``kubeforge.cluster.*`` filter, Ansible imports every file of ``plugins/filter`` in the worker process
of the task (one per task and host), and the collection loader compiles a collection's Python source on every import
(no bytecode cache). With the implementations in the filter files, a task that used one etcd filter compiled about
2,200 lines of filter code and their imports, some 35 ms of controller CPU per task and host. Each filter file now
names its filters and this class imports the implementation (``plugins/plugin_utils/<file>``) only where one of them
runs.
"""

from __future__ import annotations

import importlib

PACKAGE = "ansible_collections.kubeforge.cluster.plugins.plugin_utils"


class LazyFilters:
    """The filters ``names`` of ``plugin_utils/<module>.py``; ``exports`` are other names the filter file re-exports
    (for the unit tests and for other plugins that import them from the filter file)."""

    def __init__(self, module, names, exports=()):
        self._module = "%s.%s" % (PACKAGE, module)
        self._names = tuple(names)
        self._exports = frozenset(self._names) | frozenset(exports)

    def implementation(self):
        return importlib.import_module(self._module)

    def filters(self):
        """``{name: callable}`` for FilterModule.filters(); nothing is imported until a filter is called."""
        return {name: self._caller(name) for name in self._names}

    def _caller(self, name):
        def call(*args, **kwargs):
            return getattr(self.implementation(), name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = "kubeforge.cluster.%s (implemented in %s)" % (name, self._module)
        return call

    def attribute(self, name):
        """A module ``__getattr__``: the implementation's ``name`` when the filter file exports it."""
        if name not in self._exports:
            raise AttributeError("module %s has no attribute %r" % (self._module.replace("plugin_utils", "filter"), name))
        return getattr(self.implementation(), name)
