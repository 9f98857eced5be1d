# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the repository importable as ``ansible_collections.kubeforge.cluster`` for pytest.

The collection lives at the repository root; ``.build/collections`` holds a symlink
``ansible_collections/kubeforge/cluster -> repo`` (also made by ``make collection-link``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO_ROOT / ".build" / "collections"
LINK = COLLECTIONS_ROOT / "ansible_collections" / "kubeforge" / "cluster"

if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(REPO_ROOT, LINK)
    except FileExistsError:
        pass

for path in (str(COLLECTIONS_ROOT), str(REPO_ROOT / "tools"), str(REPO_ROOT / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


def pytest_terminal_summary(terminalreporter):
    """Print what tests measured (tests/figures.py): property example counts, hostile-probe worst cases."""
    from figures import FIGURES

    if FIGURES:
        terminalreporter.section("figures")
        for name in sorted(FIGURES):
            terminalreporter.write_line("%s: %s" % (name, FIGURES[name]))
