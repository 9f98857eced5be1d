# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print one closing line for `make test`: the pytest results of every stage, added up.

    python tools/junit_summary.py .build/junit      ->  make test: 334 passed, 0 failed, 0 skipped
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def totals(directory: Path) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for report in sorted(directory.glob("*.xml")):
        root = ET.parse(report).getroot()
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        for suite in suites:
            for key in counts:
                counts[key] += int(suite.get(key, 0))
    return counts


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else ".build/junit")
    counts = totals(directory)
    failed = counts["failures"] + counts["errors"]
    passed = counts["tests"] - failed - counts["skipped"]
    print("make test: %d passed, %d failed, %d skipped" % (passed, failed, counts["skipped"]))
    return 1 if failed or not counts["tests"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
