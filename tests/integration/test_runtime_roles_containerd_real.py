# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the kata and cri_dockerd roles ask of containerd_config, judged by the real containerd 1.6, 1.7 and 2.1.

The requests are rendered from the roles' own defaults and vars (so a change there is tested here), merged into the
config files these containerd versions meet (Debian's own, Docker's containerd.io, each version's default, a missing
file) and checked with ``containerd config dump``: the kata runtime is effective with runc still the default, and the
Docker node's containerd has no CRI plugin. No Kata binary exists here; containerd only needs the configuration.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jinja2 import StrictUndefined
from jinja2.nativetypes import NativeEnvironment
import debfetch
from containerd_config_harness import run_local
from test_containerd_config_real import FIXTURES, SUITES, dump

pytestmark = pytest.mark.real_binary

ROLES = Path(__file__).resolve().parents[2] / "roles"
INPUTS = {
    "debian-bookworm": (FIXTURES / "debian-bookworm-1.6.toml").read_text(),
    "docker-containerd.io": (FIXTURES / "docker-default.toml").read_text(),
    "v2-default": (FIXTURES / "v2-default-1.7.toml").read_text(),
    "v3-default": (FIXTURES / "v3-default-2.1.toml").read_text(),
    "missing": None,
}


def role_value(role, name):
    """A role variable rendered from its defaults/main.yml and vars/main.yml, in file order (plain Jinja with native
    types; variables that need facts or Ansible's own filters are left out, the ones asked for must not need them)."""
    env = NativeEnvironment(undefined=StrictUndefined)
    context = {}

    def render(value):
        if isinstance(value, str) and "{{" in value:
            return env.from_string(value).render(**context)
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v) for v in value]
        return value

    for part in ("defaults", "vars"):
        for key, value in (yaml.safe_load((ROLES / role / part / "main.yml").read_text()) or {}).items():
            try:
                context[key] = render(value)
            except Exception:  # noqa: BLE001 - facts, Ansible filters: not needed for what is asked
                if key == name:
                    raise
    return context[name]


KATA_RUNTIME = role_value("kata", "__kata_containerd_runtime")


@pytest.fixture(scope="module", params=sorted(SUITES))
def real_containerd(request):
    try:
        root = debfetch.fetch("containerd", request.param)
    except debfetch.DebFetchError as exc:
        pytest.skip("containerd of Debian %s cannot be fetched here: %s" % (request.param, exc))
    return SUITES[request.param], str(Path(root) / "usr" / "bin" / "containerd")


def merge(tmp_path, binary, text, **params):
    path = tmp_path / "config.toml"
    if text is not None:
        path.write_text(text)
    result, _node = run_local(path=str(path), containerd_path=binary, **params)
    return path, result


def test_the_kata_request_is_what_the_role_documents():
    assert KATA_RUNTIME == {"runtime_type": "io.containerd.kata.v2", "runtime_path": "/opt/kata/bin/containerd-shim-kata-v2",
                            "pod_annotations": ["io.katacontainers.*"], "privileged_without_host_devices": True,
                            "options": {"ConfigPath": "/opt/kata/share/defaults/kata-containers/configuration.toml"}}


@pytest.mark.parametrize("name", ["debian-bookworm", "v2-default", "v3-default", "missing"])
def test_kata_runtime_effective_and_runc_still_the_default(tmp_path, real_containerd, name):
    release, binary = real_containerd
    if name == "v3-default" and release.startswith("1."):
        pytest.skip("containerd %s cannot read a version 3 file (tested in test_containerd_config_real.py)" % release)
    if name == "debian-bookworm":
        # what the containerd role leaves first: CRI on, the cgroup driver and pause image merged
        merge(tmp_path, binary, INPUTS[name], systemd_cgroup=True, sandbox_image="registry.lab.invalid/kubeforge/pause:3.10")
        text = None
    else:
        text = INPUTS[name]
    path, first = merge(tmp_path, binary, text, runtimes={"kata": KATA_RUNTIME}, backup=True)
    assert first["changed"] and first["validated"], first
    data, _stderr = dump(binary, path)
    if data["version"] == 2:
        cri = data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    else:
        cri = data["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]
    assert cri["default_runtime_name"] == "runc", "Kata must not become the default (host-network pods)"
    kata = cri["runtimes"]["kata"]
    for key, value in KATA_RUNTIME.items():
        assert kata[key] == value, (release, name, key, kata)
    assert "runc" in cri["runtimes"]
    _path, second = merge(tmp_path, binary, None, runtimes={"kata": KATA_RUNTIME})
    assert second["changed"] is False


@pytest.mark.parametrize("name", ["debian-bookworm", "docker-containerd.io", "missing"])
def test_the_docker_nodes_containerd_serves_no_cri(tmp_path, real_containerd, name):
    release, binary = real_containerd
    path, first = merge(tmp_path, binary, INPUTS[name], disable_cri=True, backup=True)
    data, _stderr = dump(binary, path)
    disabled = set(data.get("disabled_plugins", []))
    assert "io.containerd.grpc.v1.cri" in disabled, (release, name, disabled)
    assert "cri" not in disabled, "containerd refuses the short name in a version 2+ file"
    assert first["changed"] and first["validated"], first
    _path, second = merge(tmp_path, binary, None, disable_cri=True)
    assert second["changed"] is False
