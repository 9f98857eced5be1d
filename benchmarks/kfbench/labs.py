# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's labs: ``tools/lab.py up/down --lab bench-<N>``, remembered so that every lab this
process brought up is taken down again on success, failure or Ctrl-C."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
LAB_TOOL = REPO / "tools" / "lab.py"
sys.path.insert(0, str(REPO / "tools"))

from kflab.addressing import lab_id  # noqa: E402  (tools/ is not a package on the default path)

PREFIX = "bench-"


def lab_name(nodes: int, suffix: str = "") -> str:
    return "%s%d%s" % (PREFIX, nodes, ("-" + suffix) if suffix else "")


def netns_prefix(lab: str) -> str:
    """The network namespaces of the lab's machines are kf-<lab id>-<machine>."""
    return "kf-%s-" % lab_id(lab)


def control_planes(nodes: int, wanted: str) -> int:
    """``auto``: one control-plane node below 6 nodes, three from 6 on (an HA control plane)."""
    if wanted == "auto":
        return 1 if nodes < 6 else 3
    return max(1, min(int(wanted), nodes))


class Labs:
    """Context manager: labs brought up inside are taken down on exit unless ``keep``."""

    def __init__(self, keep: bool, distro: str, inventory_dir: Path, log):
        self.keep = keep
        self.distro = distro
        self.inventory_dir = inventory_dir
        self.log = log
        self.up_labs: list[str] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.keep:
            for lab in reversed(self.up_labs):
                self.down(lab)
        elif self.up_labs:
            self.log("labs kept (take them down with `python3 tools/lab.py down --lab NAME`): %s" % ", ".join(self.up_labs))
        return False

    def _tool(self, *args) -> float:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(LAB_TOOL), *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("tools/lab.py %s failed (rc %d):\n%s%s" % (" ".join(args), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        return time.monotonic() - started

    def up(self, lab: str, nodes: int, planes: int, fresh: bool) -> tuple[Path, float]:
        """Bring ``lab`` up with ``nodes`` machines; ``fresh`` takes an existing one down first (a first
        converge must start from new machines). Returns the inventory path and the seconds ``up`` took."""
        if fresh:
            self._tool("down", "--lab", lab)
        inventory = self.inventory_dir / ("%s.yml" % lab)
        self.up_labs.append(lab)
        seconds = self._tool("up", "--lab", lab, "--machines", str(nodes), "--control-planes", str(planes),
                             "--distro", self.distro, "--inventory", str(inventory))
        return inventory, seconds

    def down(self, lab: str) -> None:
        try:
            seconds = self._tool("down", "--lab", lab)
            self.log("%s: down in %.0f s" % (lab, seconds))
        except RuntimeError as exc:
            self.log("%s: down FAILED, run `python3 tools/lab.py down --lab %s`: %s" % (lab, lab, exc))
        if lab in self.up_labs:
            self.up_labs.remove(lab)
