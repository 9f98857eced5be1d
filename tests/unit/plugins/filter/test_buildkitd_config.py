# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""buildkitd.toml from the image_tools variables: the containerd worker, GC limits, containerd_registries translated
to BuildKit's registry tables (and what cannot be translated, said in the file), refused inputs named."""

from __future__ import annotations

import tomllib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.kubeforge.cluster.plugins.filter.buildkitd_config import buildkitd_config


def variables(**overrides):
    base = {
        "image_tools_buildkit_root": "/var/lib/buildkit",
        "image_tools_buildkit_address": "unix:///run/buildkit/buildkitd.sock",
        "image_tools_containerd_address": "/run/containerd/containerd.sock",
        "image_tools_namespace": "k8s.io",
        "image_tools_buildkit_gc_enabled": True,
        "image_tools_buildkit_gc_reserved_space": "",
        "image_tools_buildkit_gc_max_used_space": "",
        "image_tools_buildkit_gc_min_free_space": "",
        "image_tools_registries": {},
        "image_tools_buildkit_config_extra": {},
    }
    base.update(overrides)
    return base


def render(**overrides):
    text = buildkitd_config(variables(**overrides))
    return text, tomllib.loads(text)


def error(**overrides):
    with pytest.raises(AnsibleFilterError) as caught:
        buildkitd_config(variables(**overrides))
    return str(caught.value)


def test_defaults_give_the_containerd_worker_in_the_kubelet_namespace():
    text, data = render()
    assert text.startswith("# Managed by kubeforge.cluster.image_tools")
    assert data == {
        "root": "/var/lib/buildkit",
        "grpc": {"address": ["unix:///run/buildkit/buildkitd.sock"]},
        "worker": {"oci": {"enabled": False},
                   "containerd": {"enabled": True, "address": "/run/containerd/containerd.sock", "namespace": "k8s.io", "gc": True}},
    }


def test_the_same_input_gives_the_same_text():
    assert buildkitd_config(variables()) == buildkitd_config(variables())


@pytest.mark.parametrize("value, written", [
    ("20GB", "20GB"), ("512MiB", "512MiB"), ("10%", "10%"), (1073741824, 1073741824), (" 2gb ", "2gb"), ("100%", "100%"),
])
def test_gc_limits(value, written):
    data = render(image_tools_buildkit_gc_reserved_space=value, image_tools_buildkit_gc_max_used_space="60%",
                  image_tools_buildkit_gc_min_free_space="5GB", image_tools_buildkit_gc_enabled=False)[1]
    worker = data["worker"]["containerd"]
    assert (worker["reservedSpace"], worker["maxUsedSpace"], worker["minFreeSpace"], worker["gc"]) == (written, "60%", "5GB", False)


@pytest.mark.parametrize("value", ["lots", "10 %", "120%", -1, True, ["1GB"], "1GB;rm"])
def test_bad_gc_limits_name_the_variable(value):
    assert error(image_tools_buildkit_gc_max_used_space=value).startswith("image_tools_buildkit_gc_max_used_space: ")


@pytest.mark.parametrize("name, value, problem", [
    ("image_tools_buildkit_address", "tcp://0.0.0.0:1234", "unix:// socket address"),
    ("image_tools_buildkit_address", "unix://run/buildkit.sock", "unix:// socket address"),
    ("image_tools_containerd_address", "run/containerd/containerd.sock", "absolute path"),
    ("image_tools_namespace", "../k8s.io", "must not contain '/'"),
    ("image_tools_namespace", "-n", "must not start with '-'"),
    ("image_tools_buildkit_root", "/var/lib/../tmp", "'..'"),
    ("image_tools_buildkit_gc_enabled", "yes", "true or false"),
])
def test_bad_values_name_the_variable(name, value, problem):
    message = error(**{name: value})
    assert message.startswith(name + ": ") and problem in message


def test_mirrors_ca_and_tls_settings():
    registries = {
        "docker.io": {"mirrors": [{"url": "https://mirror.example:5000"},
                                  {"url": "https://harbor.example/v2/proxy.docker.io", "override_path": True, "ca": "/etc/ssl/harbor.pem"}]},
        "registry.example": {"server": "https://registry.example", "ca": ["/etc/ssl/a.pem", "/etc/ssl/b.pem"],
                             "mirrors": [{"url": "http://cache.example:8080", "capabilities": ["pull", "resolve"]},
                                         {"url": "https://mirror.example:5000"}]},
        "insecure.example:5000": {"server": "https://insecure.example:5000", "skip_verify": True},
        "plain.example": {"server": "http://plain.example"},
    }
    data = render(image_tools_registries=registries)[1]
    assert data["registry"] == {
        "docker.io": {"mirrors": ["mirror.example:5000", "harbor.example/proxy.docker.io"]},
        "harbor.example": {"ca": ["/etc/ssl/harbor.pem"]},
        "registry.example": {"mirrors": ["cache.example:8080", "mirror.example:5000"], "ca": ["/etc/ssl/a.pem", "/etc/ssl/b.pem"]},
        "cache.example:8080": {"http": True},
        "insecure.example:5000": {"insecure": True},
        "plain.example": {"http": True},
    }


def test_what_buildkit_cannot_express_is_said_in_the_file_not_dropped_silently():
    registries = {
        "_default": {"ca": "/etc/ssl/all.pem"},
        "push.example": {"mirrors": [{"url": "https://push-only.example", "capabilities": ["push"]}]},
        "path.example": {"mirrors": [{"url": "https://cache.example/base"}, {"url": "https://other.example/x", "override_path": True}]},
        "private.example": {"auth": {"username": "ci", "password": "s3cret-never-written"},
                            "mirrors": [{"url": "https://m.example", "headers": {"X-Token": "t0ken-never-written"}}]},
        "moved.example": {"server": "https://elsewhere.example:8443"},
    }
    text, data = render(image_tools_registries=registries)
    comments = [line for line in text.splitlines() if line.startswith("# image_tools_registries")]
    assert comments == [
        "# image_tools_registries['_default']: not applied, BuildKit has no default registry settings",
        "# image_tools_registries['moved.example'].server: https://elsewhere.example:8443 is used as the last pull mirror; "
        "pushes go to moved.example itself",
        "# image_tools_registries['path.example'].mirrors[0]: not applied, https://cache.example/base has a path without "
        "override_path (containerd appends /v2 to it, BuildKit puts /v2 before it)",
        "# image_tools_registries['path.example'].mirrors[1]: not applied, https://other.example/x with override_path has "
        "no /v2 prefix, which BuildKit always adds",
        "# image_tools_registries['private.example']: credentials and headers are not written; buildctl and nerdctl send "
        "credentials from ~/.docker/config.json (nerdctl login)",
        "# image_tools_registries['push.example'].mirrors[0]: not applied, BuildKit mirrors only pull (capabilities push)",
    ]
    assert "s3cret" not in text and "t0ken" not in text
    assert data["registry"] == {"moved.example": {"mirrors": ["elsewhere.example:8443"]}, "private.example": {"mirrors": ["m.example"]}}


def test_docker_hub_server_is_docker_io_itself():
    data = render(image_tools_registries={"docker.io": {"server": "https://registry-1.docker.io", "ca": "/etc/ssl/hub.pem"}})[1]
    assert data["registry"] == {"docker.io": {"ca": ["/etc/ssl/hub.pem"]}}


def test_one_mirror_host_with_two_different_settings_is_refused():
    registries = {"a.example": {"mirrors": [{"url": "https://m.example", "skip_verify": True}]},
                  "b.example": {"mirrors": [{"url": "https://m.example"}, {"url": "https://n.example"}]},
                  "c.example": {"mirrors": [{"url": "https://m.example", "ca": "/etc/ssl/m.pem"}]}}
    # a.example and c.example both configure m.example: different keys merge, the same key must agree
    data = render(image_tools_registries=registries)[1]
    assert data["registry"]["m.example"] == {"insecure": True, "ca": ["/etc/ssl/m.pem"]}
    registries["c.example"]["mirrors"][0]["ca"] = "/etc/ssl/other.pem"
    registries["b.example"]["mirrors"][0]["ca"] = "/etc/ssl/m.pem"
    message = error(image_tools_registries=registries)
    assert message.startswith("image_tools_registries['c.example'].mirrors[0]: sets ca = ['/etc/ssl/other.pem'] for the registry host m.example")
    assert "image_tools_registries['b.example'].mirrors[0] sets ['/etc/ssl/m.pem']" in message


def test_a_url_with_a_credential_is_refused_without_showing_it():
    message = error(image_tools_registries={"a.example": {"mirrors": [{"url": "https://user:hunter2@m.example"}]}})
    assert message.startswith("image_tools_registries['a.example'].mirrors[0].url: must not carry a user name or password")
    assert "hunter2" not in message


def test_invalid_registries_are_refused_by_the_containerd_validation():
    message = error(image_tools_registries={"https://a.example": {}})
    assert message.startswith("image_tools_registries['https://a.example']: the key must be a registry host name")
    assert error(image_tools_registries=["docker.io"]).startswith("image_tools_registries: must be a dict")


def test_extra_settings_are_merged():
    extra = {"history": {"maxAge": 172800}, "worker": {"containerd": {"max-parallelism": 4,
                                                                      "gcpolicy": [{"all": True, "reservedSpace": "1GB"}]}},
             "registry": {"local.example:5000": {"http": True}}}
    data = render(image_tools_buildkit_config_extra=extra)[1]
    assert data["history"] == {"maxAge": 172800}
    assert data["worker"]["containerd"]["max-parallelism"] == 4
    assert data["worker"]["containerd"]["gcpolicy"] == [{"all": True, "reservedSpace": "1GB"}]
    assert data["worker"]["containerd"]["namespace"] == "k8s.io"
    assert data["registry"] == {"local.example:5000": {"http": True}}


@pytest.mark.parametrize("extra, variable", [
    ({"worker": {"containerd": {"namespace": "buildkit"}}}, "image_tools_namespace"),
    ({"grpc": {"address": ["tcp://0.0.0.0:1234"]}}, "image_tools_buildkit_address"),
    ({"root": "/srv/buildkit"}, "image_tools_buildkit_root"),
    ({"worker": {"containerd": {"maxUsedSpace": "1GB"}}}, "image_tools_buildkit_gc_max_used_space"),
])
def test_extra_settings_cannot_override_what_a_variable_sets(extra, variable):
    message = error(image_tools_buildkit_config_extra=extra)
    assert message.startswith("image_tools_buildkit_config_extra: sets ") and message.endswith("from %s: set that variable instead" % variable)


def test_extra_registry_tables_cannot_replace_the_translated_ones():
    message = error(image_tools_registries={"docker.io": {"mirrors": [{"url": "https://m.example"}]}},
                    image_tools_buildkit_config_extra={"registry": {"m.example": {"http": True}}})
    assert message == ("image_tools_buildkit_config_extra: sets registry.m.example, which the role writes from "
                       "image_tools_registries (containerd_registries): change it there")


@pytest.mark.parametrize("extra, message", [
    ({"dns": {"nameservers": None}}, "image_tools_buildkit_config_extra.dns.nameservers: must be a string, number, bool, list or dict, got null"),
    ("debug = true", "image_tools_buildkit_config_extra: must be a dict, got a string"),
])
def test_extra_settings_must_be_toml_data(extra, message):
    assert error(image_tools_buildkit_config_extra=extra) == message
