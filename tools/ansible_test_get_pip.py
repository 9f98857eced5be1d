# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the pip bootstrap script ansible-test downloads.

ansible-test creates its sanity virtual environments without pip and fetches a ``get-pip``
script from a host this machine cannot reach. ansible-test documents that the script may be
placed in ``~/.ansible/test/cache/get_pip_<version>.py`` instead; ``make sanity`` puts this file
there. It bootstraps pip from the standard library's ``ensurepip`` and then lets pip install
what ansible-test asked for (the pinned pip itself) from the package index.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

# Options only the real get-pip script understands.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
# ansible-test runs this with a reduced environment: keep the system CA bundle pip is set up with.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

if "PIP_CERT" not in os.environ and os.path.exists(SYSTEM_CA_BUNDLE):
    os.environ["PIP_CERT"] = SYSTEM_CA_BUNDLE

# In a child process: ensurepip clears PIP_* and the pip config file in its own environment.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
sys.argv = [sys.argv[0]] + [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
if len(sys.argv) == 1 or sys.argv[1] != "install":
    sys.argv.insert(1, "install")
runpy.run_module("pip", run_name="__main__", alter_sys=True)
