# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon.json merge logic: parsing, merging as data, value checks, flag and key checks, restart vs reload."""

from __future__ import annotations

import json

import pytest
from ansible_collections.kubeforge.cluster.plugins.module_utils import _docker_daemon_config as ddc
from ansible_collections.kubeforge.cluster.plugins.module_utils._validate import InputError

# The flag list of `dockerd --help` as Debian 12's dockerd 20.10 prints it (abridged to the lines that matter here).
HELP_20_10 = """
Usage:	dockerd [OPTIONS]

A self-sufficient runtime for containers.

Options:
      --add-runtime runtime                   Register an additional OCI compatible runtime (default [])
      --bip string                            Specify network bridge IP
  -b, --bridge string                         Attach containers to a network bridge
      --config-file string                    Daemon configuration file (default "/etc/docker/daemon.json")
      --containerd string                     containerd grpc address
      --data-root string                      Root directory of persistent Docker state (default "/var/lib/docker")
  -D, --debug                                 Enable debug mode
      --exec-opt list                         Runtime execution options
  -H, --host list                             Daemon socket(s) to connect to
      --insecure-registry list                Enable insecure registry communication
      --live-restore                          Enable live restore of docker when containers are still running
      --log-driver string                     Default driver for container logs (default "json-file")
  -l, --log-level string                      Set the logging level ("debug"|"info"|"warn"|"error"|"fatal") (default "info")
      --log-opt map                           Default log driver options for containers (default map[])
      --registry-mirror list                  Preferred Docker registry mirror
  -s, --storage-driver string                 Storage driver to use
      --storage-opt list                      Storage driver options
  -v, --version                               Print version information and quit
"""


@pytest.mark.parametrize("text", [None, "", "  \n"])
def test_a_missing_or_empty_file_is_an_empty_object(text):
    assert ddc.parse_document(text, "/etc/docker/daemon.json") == {}


@pytest.mark.parametrize("text, fragment", [
    ('{"log-driver": "json-file",}', "is not valid JSON at line 1"),
    ('{\n  "debug": true\n  "live-restore": true\n}', "at line 3 column 3"),
    ('["a"]', "must hold a JSON object"),
    ('{"debug": true, "debug": false}', "sets 'debug' twice"),
])
def test_a_file_that_is_not_one_json_object_is_refused_untouched(text, fragment):
    with pytest.raises(ddc.DaemonConfigError) as err:
        ddc.parse_document(text, "/etc/docker/daemon.json")
    assert fragment in err.value.msg
    assert "/etc/docker/daemon.json" in err.value.msg and "untouched" in err.value.msg


def test_settings_merge_into_objects_and_replace_lists_keeping_other_keys_and_order():
    current = {"data-root": "/srv/docker", "log-opts": {"max-file": "3", "compress": "true"},
               "registry-mirrors": ["https://old.example"], "labels": ["site=a"]}
    merged = ddc.merge(current, {"log-opts": {"max-size": "100m", "max-file": "5"},
                                 "registry-mirrors": ["https://new.example"], "log-driver": "json-file"}, {}, [])
    assert merged == {"data-root": "/srv/docker", "log-opts": {"max-file": "5", "compress": "true", "max-size": "100m"},
                      "registry-mirrors": ["https://new.example"], "labels": ["site=a"], "log-driver": "json-file"}
    assert list(merged) == ["data-root", "log-opts", "registry-mirrors", "labels", "log-driver"]
    assert current["log-opts"] == {"max-file": "3", "compress": "true"}, "the input is not modified"


@pytest.mark.parametrize("current, wanted, expected", [
    ([], {"native.cgroupdriver": "systemd"}, ["native.cgroupdriver=systemd"]),
    (["native.cgroupdriver=cgroupfs", "isolation=default"], {"native.cgroupdriver": "systemd"},
     ["native.cgroupdriver=systemd", "isolation=default"]),
    (["isolation=default", "Native.CgroupDriver = cgroupfs", "native.cgroupdriver=systemd"], {"native.cgroupdriver": "systemd"},
     ["isolation=default", "native.cgroupdriver=systemd"]),
    (["native.cgroupdriver=systemd"], {"native.cgroupdriver": "systemd"}, ["native.cgroupdriver=systemd"]),
])
def test_exec_opts_are_merged_by_option_name(current, wanted, expected):
    assert ddc.merge_exec_opts(current, wanted) == expected


def test_remove_deletes_top_level_keys_and_a_missing_one_is_no_change():
    merged = ddc.merge({"insecure-registries": ["r:5000"], "debug": True}, {}, {}, ["insecure-registries", "bip"])
    assert merged == {"debug": True}


@pytest.mark.parametrize("settings, exec_opts, remove, fragment", [
    ({}, {"native.cgroupdriver=systemd": ""}, [], "give the option name as the key"),
    ({"exec-opts": []}, {"native.cgroupdriver": "systemd"}, [], "use one of them"),
    ({"debug": True}, {}, ["debug"], "debug is also set by this task"),
    ({}, {"native.cgroupdriver": 1}, [], "exec_opts.native.cgroupdriver: must be a string"),
    ("debug", {}, [], "settings: must be a dict"),
])
def test_contradictory_or_mistyped_requests_are_refused(settings, exec_opts, remove, fragment):
    with pytest.raises(InputError) as err:
        ddc.validate_request(settings, exec_opts, remove)
    assert fragment in str(err.value)


@pytest.mark.parametrize("keys, restart, reload", [
    ([], False, False),
    (["registry-mirrors", "insecure-registries"], False, True),
    (["live-restore", "debug"], False, True),
    (["registry-mirrors", "log-opts"], True, False),
    (["exec-opts"], True, False),
    (["storage-driver"], True, False),
])
def test_only_keys_dockerd_reloads_on_sighup_avoid_a_restart(keys, restart, reload):
    assert ddc.apply_reload_rules(keys) == (restart, reload)


@pytest.mark.parametrize("data, fragment", [
    ({"log-opts": {"max-file": 3}}, 'log-opts.max-file must be a string (dockerd refuses 3; write "3")'),
    ({"log-opts": {"compress": True}}, 'write "true"'),
    ({"exec-opts": "native.cgroupdriver=systemd"}, "exec-opts must be a list of strings"),
    ({"exec-opts": ["native.cgroupdriver=system"]}, "native.cgroupdriver must be systemd or cgroupfs, got 'system'"),
    ({"registry-mirrors": ["mirror.example"]}, "registry-mirrors entry 'mirror.example' must be an http:// or https:// URL"),
    ({"live-restore": "true"}, "live-restore must be true or false"),
    ({"max-concurrent-downloads": True}, "max-concurrent-downloads must be an integer"),
    ({"data-root": "var/lib/docker"}, "data-root must be an absolute path"),
    ({"log-driver": ["json-file"]}, "log-driver must be a string"),
])
def test_values_dockerd_would_refuse_are_named(data, fragment):
    assert any(fragment in problem for problem in ddc.value_problems(data)), ddc.value_problems(data)


def test_good_values_have_no_problem():
    assert ddc.value_problems({"exec-opts": ["native.cgroupdriver=systemd"], "log-driver": "json-file",
                               "log-opts": {"max-size": "100m"}, "registry-mirrors": ["https://m.example"],
                               "insecure-registries": ["10.0.0.0/8", "r.example:5000"], "live-restore": True}) == []


def test_known_keys_come_from_the_dockerd_flags():
    keys = ddc.known_keys(HELP_20_10)
    for key in ("exec-opts", "log-opts", "log-driver", "registry-mirrors", "insecure-registries", "hosts", "debug",
                "storage-driver", "storage-opts", "data-root", "runtimes", "bridge", "log-level", "live-restore", "containerd"):
        assert key in keys, key
    for flag in ("exec-opt", "host", "registry-mirror"):
        assert flag in keys, "dockerd accepts a flag's own name in daemon.json: %s" % flag
    for flag in ("config-file", "version", "help", "proxies"):
        assert flag not in keys, flag


@pytest.mark.parametrize("argv, keys", [
    (["-H", "fd://", "--containerd=/run/containerd/containerd.sock"], {"hosts", "containerd"}),
    (["--host", "unix:///run/docker.sock", "--insecure-registry", "r:5000", "--exec-opt", "native.cgroupdriver=systemd"],
     {"hosts", "insecure-registries", "exec-opts"}),
    (["-D", "--log-opt=max-size=10m", "--config-file", "/etc/docker/daemon.json"], {"debug", "log-opts"}),
    ([], set()),
])
def test_flags_on_the_dockerd_command_line_map_to_file_keys(argv, keys):
    assert ddc.flag_keys(argv) == keys


def test_url_credentials_and_secret_keys_are_secrets_and_masked():
    data = {"proxies": {"http-proxy": "http://proxyuser:s3cret-pw@proxy.example:3128", "no-proxy": "localhost"},
            "registry-mirrors": ["https://mirror.example"], "auth": {"token": "tok-123"}}
    secrets = ddc.secrets_of(data)
    assert "s3cret-pw" in secrets and "proxyuser:s3cret-pw" in secrets and "tok-123" in secrets
    shown = json.dumps(ddc.masked(data, secrets))
    assert "s3cret-pw" not in shown and "tok-123" not in shown
    assert "proxy.example:3128" in shown and "https://mirror.example" in shown


class FakeNode(ddc.NodeOps):
    """A node with a file, an optional dockerd (new: has --validate; old: only --help) and a running dockerd."""

    def __init__(self, text=None, dockerd="new", running=None, refuse=None):
        self.files = {} if text is None else {"/etc/docker/daemon.json": text.encode()}
        self.kind = dockerd
        self.running = running
        self.refuse = refuse
        self.calls = []
        self.writes = []
        self.hidden = []

    def read(self, path):
        return self.files.get(path)

    def dockerd(self):
        return None if self.kind is None else "/usr/sbin/dockerd"

    def run(self, argv):
        self.calls.append(argv)
        if argv[1] == "--validate":
            if self.kind == "old":
                return 125, "", "unknown flag: --validate\nSee 'dockerd --help'.\n"
            if self.refuse:
                return 1, "", "unable to configure the Docker daemon with file %s: %s\n" % (argv[3], self.refuse)
            return 0, "configuration OK\n", ""
        if argv[1] == "--help":
            return 0, HELP_20_10, ""
        raise AssertionError(argv)

    def running_dockerd_args(self):
        return self.running

    def candidate(self, path, text):
        self.candidate_text = text
        return "/tmp/candidate/daemon.json"

    def write(self, path, text, expected, mode, backup):
        self.writes.append((path, text, expected, mode, backup))
        self.files[path] = text.encode()
        return None

    def hide(self, secrets):
        self.hidden.extend(secrets)


PARAMS = {"path": "/etc/docker/daemon.json", "settings": {"log-driver": "json-file", "log-opts": {"max-size": "100m"}},
          "exec_opts": {"native.cgroupdriver": "systemd"}, "remove": [], "validate": True, "backup": True}


def test_run_check_mode_validates_and_writes_nothing_then_apply_then_reapply_is_unchanged():
    node = FakeNode('{"data-root": "/srv/docker"}\n')
    checked = ddc.run(PARAMS, node, check_mode=True)
    assert checked["changed"] and checked["restart_required"] and not node.writes
    assert checked["validated_with"] == "dockerd --validate"
    assert checked["changed_keys"] == ["exec-opts", "log-driver", "log-opts"]
    applied = ddc.run(PARAMS, node)
    assert applied["changed"] and len(node.writes) == 1
    path, text, expected, mode, backup = node.writes[0]
    assert json.loads(text) == {"data-root": "/srv/docker", "log-driver": "json-file", "log-opts": {"max-size": "100m"},
                                "exec-opts": ["native.cgroupdriver=systemd"]}
    assert expected == b'{"data-root": "/srv/docker"}\n' and mode == 0o644 and backup is True
    again = ddc.run(PARAMS, node)
    assert not again["changed"] and again["changed_keys"] == [] and len(node.writes) == 1
    assert again["daemon_action"] == "none"


def test_run_same_data_in_other_formatting_is_not_rewritten():
    node = FakeNode('{"log-opts":{"max-size":"100m"},"exec-opts":["native.cgroupdriver=systemd"],"log-driver":"json-file"}')
    assert not ddc.run(PARAMS, node)["changed"] and not node.writes


def test_run_a_mirror_change_needs_only_a_reload():
    node = FakeNode(json.dumps({"exec-opts": ["native.cgroupdriver=systemd"], "registry-mirrors": ["https://a.example"]}))
    result = ddc.run(dict(PARAMS, settings={"registry-mirrors": ["https://b.example"]}), node)
    assert result["reload_required"] and not result["restart_required"]
    assert result["daemon_action"].startswith("reload: dockerd applies registry-mirrors on SIGHUP")


def test_run_dockerd_validate_refusal_is_reported_with_the_real_path_and_nothing_written():
    node = FakeNode("{}", refuse="the following directives don't match any configuration option: bogus-key")
    with pytest.raises(ddc.DaemonConfigError) as err:
        ddc.run(dict(PARAMS, settings={"bogus-key": 1}), node)
    assert "dockerd --validate refuses the merged /etc/docker/daemon.json" in err.value.msg
    assert "/tmp/candidate" not in err.value.msg and not node.writes


def test_run_old_dockerd_falls_back_to_its_help_flags():
    node = FakeNode("{}", dockerd="old")
    result = ddc.run(PARAMS, node)
    assert result["validated_with"].startswith("dockerd --help keys")
    assert [argv[1] for argv in node.calls] == ["--validate", "--help"]
    with pytest.raises(ddc.DaemonConfigError) as err:
        ddc.run(dict(PARAMS, settings={"registry-mirrorz": ["https://m.example"]}), FakeNode("{}", dockerd="old"))
    assert "this dockerd has no configuration key registry-mirrorz" in err.value.msg
    result = ddc.run(dict(PARAMS, settings={"registry-mirror": ["https://m.example"]}), FakeNode("{}", dockerd="old"))
    assert result["warnings"] == ["/etc/docker/daemon.json sets registry-mirror, the command-line flag's name: dockerd accepts it "
                                  "but ignores the value; the daemon.json key is registry-mirrors"]


def test_run_old_dockerd_warns_about_unknown_keys_already_in_the_file():
    node = FakeNode('{"made-up": 1}', dockerd="old")
    result = ddc.run(PARAMS, node)
    assert any("made-up" in warning for warning in result["warnings"])


def test_run_a_key_the_running_dockerd_gets_as_a_flag_is_refused():
    node = FakeNode("{}", running=["-H", "fd://", "--containerd=/run/containerd/containerd.sock"])
    with pytest.raises(ddc.DaemonConfigError) as err:
        ddc.run(dict(PARAMS, settings={"hosts": ["unix:///run/docker.sock"]}), node)
    assert "gets hosts as command-line flags" in err.value.msg and not node.writes
    assert ddc.run(PARAMS, node)["changed"], "keys that are not flags are fine"


def test_run_invalid_file_is_refused_before_any_command():
    node = FakeNode('{"debug": true')
    with pytest.raises(ddc.DaemonConfigError):
        ddc.run(PARAMS, node)
    assert node.calls == [] and not node.writes


def test_run_without_dockerd_checks_values_and_warns():
    result = ddc.run(PARAMS, FakeNode(None, dockerd=None))
    assert result["validated_with"] == "value types only"
    assert any("no dockerd binary" in warning for warning in result["warnings"])
    with pytest.raises(ddc.DaemonConfigError) as err:
        ddc.run(dict(PARAMS, settings={"log-opts": {"max-file": 5}}), FakeNode(None, dockerd=None))
    assert "log-opts.max-file must be a string" in err.value.msg


def test_run_credentials_are_hidden_masked_in_the_diff_and_make_a_new_file_private():
    node = FakeNode(None)
    params = dict(PARAMS, settings={"proxies": {"https-proxy": "http://u:pw-lab-only@proxy.example:3128"}})
    result = ddc.run(params, node)
    assert "pw-lab-only" in node.hidden
    assert "pw-lab-only" not in json.dumps(result)
    assert node.writes[0][3] == 0o600 and "pw-lab-only" in node.writes[0][1]
