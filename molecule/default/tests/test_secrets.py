# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret reaches the output: a converge at -vv --diff with every secret variable of every role set.

Runs after test_default.py (file order), on the converged machines: the secrets in ../vars/secrets.yml differ from the
inventory's, so the files holding them change, and both the old values (from the inventory) and the new ones are
searched for in the output, raw and in the forms the roles encode them (Basic auth base64).
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
SECRETS_FILE = SCENARIO / "vars" / "secrets.yml"
SECRET_KEYS = {"password", "token", "secret", "private_key", "auth", "headers"}
# keys below a secret key that are not secret themselves (a registry user name is printed in logs legitimately)
PUBLIC_KEYS = {"username"}


def secret_values(data, under_secret=False):
    """Every string below a secret key (user names aside), plus the base64 user:password of every auth dict."""
    found = set()
    if isinstance(data, dict):
        if isinstance(data.get("username"), str) and isinstance(data.get("password"), str):
            found.add(base64.b64encode(("%s:%s" % (data["username"], data["password"])).encode()).decode())
        for key, value in data.items():
            if str(key).lower() not in PUBLIC_KEYS:
                found |= secret_values(value, under_secret or str(key).lower() in SECRET_KEYS)
    elif isinstance(data, list):
        for value in data:
            found |= secret_values(value, under_secret)
    elif under_secret and isinstance(data, str) and data:
        found.add(data)
    return found


@pytest.fixture(scope="session")
def leak_run(request):
    wanted = yaml.safe_load(SECRETS_FILE.read_text())
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    # the inventory's values of the same variables (what the files hold before this run)
    from testinfra.utils.ansible_runner import AnsibleRunner

    runner = AnsibleRunner(inventory)
    secrets = set(wanted.get("secret_values") or [])
    for host in runner.get_hosts("all"):
        hostvars = runner.get_variables(host)
        secrets |= secret_values({name: hostvars[name] for name in wanted if name in hostvars and name != "secret_values"})
    secrets |= secret_values({name: value for name, value in wanted.items() if name != "secret_values"})
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, "-vv", "--diff", "-e", "@" + str(SECRETS_FILE), str(SCENARIO / "converge.yml")],
        capture_output=True, text=True, timeout=900, check=False, env=os.environ.copy())
    return secrets, proc


def test_converge_with_rotated_secrets_succeeds(leak_run):
    secrets, proc = leak_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # not vacuous: the secrets were found, and the run changed the files that hold them
    assert len(secrets) >= 4, secrets
    assert "changed=0 " not in proc.stdout.split("PLAY RECAP")[-1], "the rotated secrets changed nothing"


def test_no_secret_in_the_output(leak_run):
    secrets, proc = leak_run
    output = proc.stdout + proc.stderr
    leaked = sorted(secret for secret in secrets if secret in output)
    assert not leaked, "secret values in the -vv --diff output: %s" % ["%s...(%d chars)" % (s[:3], len(s)) for s in leaked]
