# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from module_harness import patch_module_exits


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    return patch_module_exits(monkeypatch)
