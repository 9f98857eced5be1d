# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No registry credential reaches the output of playbooks/image_tools.yml at -vv --diff: image_tools reads
containerd_registries (with auth and headers) to write buildkitd.toml, and must not echo them. (The containerd role's
own handling of them is checked by the default scenario.)

The shared secrets list (molecule/default/vars/secrets.yml) and its value finder (molecule/default/tests/
test_secrets.py) are reused; the values differ from this scenario's inventory, so the files built from them change and
their diffs are shown. Runs after test_image_tools.py (file order): it leaves the machine with the rotated values.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
SHARED = SCENARIO.parent / "default"


def shared_check():
    spec = importlib.util.spec_from_file_location("shared_secret_check", SHARED / "tests" / "test_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def leak_run():
    check = shared_check()
    secrets_file = SHARED / "vars" / "secrets.yml"
    wanted = yaml.safe_load(secrets_file.read_text())
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    from testinfra.utils.ansible_runner import AnsibleRunner

    runner = AnsibleRunner(inventory)
    secrets = set(wanted.get("secret_values") or [])
    for host in runner.get_hosts("all"):
        hostvars = runner.get_variables(host)
        secrets |= check.secret_values({name: hostvars[name] for name in wanted if name in hostvars and name != "secret_values"})
    secrets |= check.secret_values({name: value for name, value in wanted.items() if name != "secret_values"})
    playbook = SCENARIO.parents[1] / "playbooks" / "image_tools.yml"
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, "-vv", "--diff", "-e", "@" + str(secrets_file), str(playbook)],
        capture_output=True, text=True, timeout=900, check=False, env=os.environ.copy())
    return secrets, proc


def test_converge_with_rotated_secrets_succeeds_and_changes_buildkitd_toml(leak_run):
    secrets, proc = leak_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert len(secrets) >= 4, secrets
    # not vacuous: buildkitd.toml was rewritten from the rotated registries and its diff is in the output
    assert "+++ after: /etc/buildkit/buildkitd.toml" in proc.stdout


def test_no_secret_in_the_output(leak_run):
    secrets, proc = leak_run
    output = proc.stdout + proc.stderr
    leaked = sorted(secret for secret in secrets if secret in output)
    assert not leaked, "secret values in the -vv --diff output: %s" % ["%s...(%d chars)" % (s[:3], len(s)) for s in leaked]
