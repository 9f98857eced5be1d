# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the lab keeps its files. ``CACHE_ROOT`` is read at call time (tests point it elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TOOLS_DIR.parent
LAB_PY = TOOLS_DIR / "lab.py"
CACHE_ROOT = Path(os.environ.get("KUBEFORGE_CACHE", REPO_ROOT / ".cache")) / "lab"
DEFAULT_LAB = "kubeforge"


def lab_dir(lab: str) -> Path:
    return CACHE_ROOT / lab


def state_path(lab: str) -> Path:
    return lab_dir(lab) / "state.json"


def base_dir(distro: str) -> Path:
    return CACHE_ROOT / ("base-%s" % distro)


def lock_path(name: str) -> Path:
    """A lock file shared by every lab of this cache (``name`` without the leading dot)."""
    return CACHE_ROOT / (".%s.lock" % name)


def ip_forward_memo() -> Path:
    """The host's ip_forward value from before the first lab (restored by the last ``down``)."""
    return CACHE_ROOT / ".ip_forward_before"


def default_inventory(lab: str) -> Path:
    return REPO_ROOT / "inventories" / lab / "hosts.yml"


def lab_flag(lab: str) -> str:
    """`` --lab NAME`` for messages, empty for the default lab."""
    return "" if lab == DEFAULT_LAB else " --lab " + lab
