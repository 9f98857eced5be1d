# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two ansible-playbook processes change one config.toml at the same time (real containerd 1.6 judges each
candidate): every run's change is in the final file, or that run failed saying why. Never a silent loss.

Two rounds here (each round two playbooks of three tasks); benchmarks/containerd_config_concurrency.py runs
the same round 50 times and prints how often the file changed under a task's feet.
"""

from __future__ import annotations

from pathlib import Path

import debfetch
import pytest
from containerd_config_play import writers_round

pytestmark = pytest.mark.real_binary

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "containerd"


@pytest.fixture(scope="module")
def containerd_bin():
    try:
        root = debfetch.fetch("containerd", "bookworm")
    except debfetch.DebFetchError as exc:
        pytest.skip("containerd 1.6 (Debian bookworm) cannot be fetched here: %s" % exc)
    return str(Path(root) / "usr" / "bin" / "containerd")


def test_two_concurrent_writers_lose_nothing(tmp_path, containerd_bin):
    conf = tmp_path / "etc" / "containerd" / "config.toml"
    conf.parent.mkdir(parents=True)
    base = (FIXTURES / "v2-default-1.7.toml").read_text()
    for round_no in range(2):
        summary = writers_round(tmp_path, containerd_bin, conf, base, round_no)
        assert summary["lost"] == [], "changes reported as made but missing from the file: %s" % summary["lost"]
        for failure in summary["failed"]:
            assert "changed by someone else" in failure, failure  # the only acceptable failure says why
        assert summary["changed"] + len(summary["failed"]) == 6
