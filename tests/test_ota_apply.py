"""OTA on the MicroPython unix port: a release from `meterkit release`, served by `meterkit ota
serve`, pushed through the dongle's web API, applied, booted on trial and confirmed; and every
way a release must be refused, with nothing on the device changed."""
import gzip
import json
import shutil
import urllib.request

import pytest

from conftest import micropython_binary
from ota_harness import Device, Serve, crooked_server, make_keys, make_release


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ota")
    keys = make_keys(tmp)
    return {"tmp": tmp, "keys": keys, "0.2.0": make_release(tmp, keys, "0.2.0"),
            "0.0.9": make_release(tmp, keys, "0.0.9"),
            "other": make_keys(tmp, "other-keys")}


def test_release_is_applied_and_the_new_version_runs(world, tmp_path):
    dev = Device(tmp_path, world["keys"])
    config = (dev.root / "config.json").read_bytes()
    with Serve(world["0.2.0"]) as url:
        dev.start()
        try:
            dev.wait_for("web:")
            assert dev.running_version() == "0.1.0"
            status, answer = dev.push(url)
            assert (status, answer.get("ok"), answer.get("version")) == (200, True, "0.2.0"), (answer, dev.lines[-5:])
            assert dev.wait_for("boot: app 0.2.0 (trial)")
            assert dev.running_version() == "0.2.0"          # the new code runs
            dev.wait_for("ota: 0.2.0 is healthy")
            status, doc = dev.request("GET", "/api/status", auth=False)
            assert doc["version"] == "0.2.0" and doc["ota"]["mode"] == "trial"
            page = urllib.request.urlopen("http://127.0.0.1:%d/live" % dev.port, timeout=30)
            assert page.status == 200 and b"<" in gzip.decompress(page.read())   # pages came along
        finally:
            dev.stop()
    state = dev.state()
    assert (state["active"], state["previous"], state["trial"], state["boots"]) == \
        ("0.2.0", "0.1.0", None, 0)
    assert (dev.root / "config.json").read_bytes() == config   # the config is untouched
    assert (dev.root / "keys/ota_public.json").exists()
    assert sorted(p.name for p in (dev.root / "apps").iterdir()) == ["0.1.0", "0.2.0"]
    manifest = json.loads((world["0.2.0"] / "manifest.json").read_text())
    for entry in manifest["files"]:                           # the tree is the release's
        assert (dev.root / "apps/0.2.0" / entry["path"]).read_bytes() == \
            (world["0.2.0"] / "files" / entry["path"]).read_bytes()
    dev.start()                                               # and it stays after a reboot
    try:
        assert dev.wait_for("boot: app 0.2.0 (normal)")
        assert dev.running_version() == "0.2.0"
    finally:
        dev.stop()


def test_a_firmware_with_the_app_frozen_takes_an_update(world, tmp_path):
    """The 64-bit build with 0.1.0 frozen in: the update lands in apps/ as files, boots on trial
    ahead of the frozen modules, serves its own pages, and stays after a reboot."""
    dev = Device(tmp_path, world["keys"], micropython=micropython_binary("unix64-frozen"),
                 frozen=True)
    with Serve(world["0.2.0"]) as url:
        dev.start()
        try:
            assert dev.wait_for("boot: app built-in (normal)")
            dev.wait_for("web:")
            assert dev.running_version() == "0.1.0"
            status, doc = dev.request("GET", "/api/status", auth=False)
            assert doc["decoder"]["backends"]["crc"] == "cmodule", doc   # the build's C module
            page = urllib.request.urlopen("http://127.0.0.1:%d/live" % dev.port, timeout=30)
            assert page.status == 200                                 # pages beside the loader
            status, answer = dev.push(url)
            assert (status, answer.get("ok"), answer.get("version")) == (200, True, "0.2.0"), \
                (answer, dev.lines[-5:])
            assert dev.wait_for("boot: app 0.2.0 (trial)")
            assert dev.running_version() == "0.2.0"
            dev.wait_for("ota: 0.2.0 is healthy")
            page = urllib.request.urlopen("http://127.0.0.1:%d/live" % dev.port, timeout=30)
            assert page.status == 200 and b"<" in gzip.decompress(page.read())
        finally:
            dev.stop()
    state = dev.state()
    assert (state["active"], state["previous"], state["trial"]) == ("0.2.0", None, None)
    assert sorted(p.name for p in (dev.root / "apps").iterdir()) == ["0.2.0"]
    dev.start()
    try:
        assert dev.wait_for("boot: app 0.2.0 (normal)")
        assert dev.running_version() == "0.2.0"
    finally:
        dev.stop()


def tampered(world, tmp_path, how):
    """A copy of the 0.2.0 release, changed by how(dir)."""
    copy = tmp_path / "tampered"
    shutil.copytree(world["0.2.0"], copy)
    how(copy)
    return copy


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def _bad_signature(world, tmp_path):
    return crooked_server(tampered(world, tmp_path, lambda d: flip_last_byte(d / "manifest.sig")))


def _unsigned(world, tmp_path):
    return crooked_server(tampered(world, tmp_path, lambda d: (d / "manifest.sig").unlink()))


def _changed_manifest(world, tmp_path):
    def bump(d):
        text = (d / "manifest.json").read_text()
        (d / "manifest.json").write_text(text.replace('"0.2.0"', '"0.2.1"'))
    return crooked_server(tampered(world, tmp_path, bump))


def _hash_mismatch(world, tmp_path):
    return crooked_server(tampered(world, tmp_path,
                                   lambda d: flip_last_byte(d / "files/lib/dongle/app.mpy")))


def _truncated(world, tmp_path):
    return crooked_server(world["0.2.0"], truncate="lib/dongle/app.mpy")


def _other_key(world, tmp_path):
    return ota_release(world, tmp_path, world["other"], "0.3.0")


def _older(world, tmp_path):
    return crooked_server(world["0.0.9"])


def ota_release(world, tmp_path, keys, version):
    return crooked_server(make_release(tmp_path, keys, version))


REFUSALS = [(_bad_signature, "bad signature"), (_unsigned, "unsigned release"),
            (_changed_manifest, "bad signature"), (_hash_mismatch, "hash mismatch: lib/dongle/app.mpy"),
            (_truncated, "truncated download: files/lib/dongle/app.mpy"),
            (_other_key, "release signed by a different key"),
            (_older, "0.0.9 is older than the running 0.1.0")]


def test_refused_releases_change_nothing(world, tmp_path):
    dev = Device(tmp_path, world["keys"])
    before = dev.snapshot()
    dev.start()
    try:
        dev.wait_for("web:")
        for number, (server_for, reason) in enumerate(REFUSALS):
            folder = tmp_path / ("case%d" % number)
            folder.mkdir()
            with Serve(None, server_for(world, folder)) as url:
                status, answer = dev.push(url)
            assert status == 409 and reason in answer["error"], (reason, answer)
            assert not (dev.root / "apps/0.2.0.tmp").exists()
        status, doc = dev.request("GET", "/api/status", auth=False)
        assert doc["version"] == "0.1.0"
        with Serve(world["0.0.9"]) as url:                     # unless forced
            status, answer = dev.push(url, force=True)
        assert (status, answer.get("version")) == (200, "0.0.9"), answer
        assert dev.wait_for("boot: app 0.0.9 (trial)")
    finally:
        dev.stop()
    after = dev.snapshot()
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert [p for p in changed if not p.startswith(("apps/0.0.9/", "ota/"))] == []


def test_push_needs_the_admin_password(world, tmp_path):
    dev = Device(tmp_path, world["keys"])
    dev.start()
    try:
        dev.wait_for("web:")
        status, _ = dev.request("POST", "/api/ota/push", {"url": "http://127.0.0.1:9/"},
                                auth=False)
        assert status == 401
        status, answer = dev.push("ftp://example.org/")
        assert status == 409 and "http://" in answer["error"]
    finally:
        dev.stop()
