"""keygen, release, ota serve and ota push: the host half of the signed-OTA contract."""
import base64
import hashlib
import http.client
import http.server
import json
import os
import stat
import sys
import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import ROOT, run_micropython

sys.path.insert(0, str(ROOT / "host"))
from meterkit_host import cli, ota_server, release  # noqa: E402
from meterkit_host.release import ReleaseError  # noqa: E402

# A reference EMSA-PKCS1-v1_5 SHA-256 check written for MicroPython (the device's way: big-int pow)
MICROPYTHON_VERIFY = """
import hashlib, time
DIGEST_INFO = bytes.fromhex('3031300d060960864801650304020105000420')
def verify(n_hex, e, signature, message):
    k = len(n_hex) // 2
    start = time.ticks_us()
    m = pow(int.from_bytes(signature, 'big'), e, int(n_hex, 16))
    took = time.ticks_diff(time.ticks_us(), start)
    digest = DIGEST_INFO + hashlib.sha256(message).digest()
    expected = b'\\x00\\x01' + b'\\xff' * (k - 3 - len(digest)) + b'\\x00' + digest
    return m.to_bytes(k, 'big') == expected, took
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    assert cli.main(["keygen", "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def released(keys, tmp_path_factory):
    """One real release through the CLI: the x64 .mpy tree built by tools/build_mpy.py."""
    out = tmp_path_factory.mktemp("rel") / "0.2.0"
    assert cli.main(["release", "--key", str(keys / "ota_private.pem"), "--version", "0.2.0",
                     "--arch", "x64", "--out", str(out)]) == 0
    return out


def public(keys):
    return json.loads((keys / "ota_public.json").read_text())


def copy_release(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_keygen_writes_a_private_key_only_the_owner_reads_and_a_matching_public_key(keys):
    mode = stat.S_IMODE(os.stat(keys / "ota_private.pem").st_mode)
    assert mode == 0o600
    doc = public(keys)
    key = release.load_private_key(keys / "ota_private.pem")
    numbers = key.public_key().public_numbers()
    assert int(doc["n"], 16) == numbers.n and doc["e"] == 65537 and numbers.n.bit_length() == 2048
    assert doc["key_id"] == hashlib.sha256(numbers.n.to_bytes(256, "big")).hexdigest()[:16]


def test_keygen_refuses_to_overwrite_a_key(keys, capsys):
    before = (keys / "ota_private.pem").read_bytes()
    assert cli.main(["keygen", "--out", str(keys)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (keys / "ota_private.pem").read_bytes() == before


def test_manifest_follows_the_contract(released, keys):
    manifest = json.loads((released / "manifest.json").read_bytes())
    assert manifest["format"] == 1 and manifest["version"] == "0.2.0" and manifest["arch"] == "x64"
    assert manifest["key_id"] == public(keys)["key_id"]
    assert manifest["created"].endswith("Z") and len(manifest["created"]) == 20
    paths = [entry["path"] for entry in manifest["files"]]
    assert paths == sorted(paths) and "main.py" in paths and "lib/meterkit/stream.mpy" in paths
    assert not [p for p in paths if p.startswith("/") or ".." in p.split("/") or p.endswith(".py") and p != "main.py"]
    on_disk = sorted(p.relative_to(released / "files").as_posix()
                     for p in (released / "files").rglob("*") if p.is_file())
    assert on_disk == paths
    for entry in manifest["files"]:
        data = (released / "files" / entry["path"]).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    stream = (released / "files" / "lib/meterkit/stream.mpy").read_bytes()
    assert stream[:2] == b"M\x06"   # a real .mpy, not source


def test_signature_verifies_with_cryptography(released, keys):
    signature = (released / "manifest.sig").read_bytes()
    assert len(signature) == 256
    key = release.public_key_from_doc(public(keys))
    key.verify(signature, (released / "manifest.json").read_bytes(), padding.PKCS1v15(), hashes.SHA256())
    assert release.verify_release(released, public(keys))["version"] == "0.2.0"


def test_signature_verifies_on_micropython_with_pow_and_sha256(released, keys):
    doc = public(keys)
    signature = (released / "manifest.sig").read_bytes()
    message = (released / "manifest.json").read_bytes()
    code = MICROPYTHON_VERIFY + "\nprint(verify(%r, %d, %r, %r))\nprint(verify(%r, %d, %r, %r)[0])" % (
        doc["n"], doc["e"], signature, message, doc["n"], doc["e"], signature, message + b" ")
    lines = run_micropython(code).split("\n")
    assert lines[0].startswith("(True, ") and lines[1] == "False"
    print("pow(sig, 65537, n) on the unix port: %s us" % lines[0].split(", ")[1].rstrip(")"))


@pytest.mark.parametrize("tamper, reason", [
    (lambda d: (d / "files/lib/meterkit/stream.mpy").write_bytes(b"M\x06evil"), "file does not match"),
    (lambda d: (d / "files/main.py").unlink(), "missing file: main.py"),
    (lambda d: (d / "manifest.json").write_bytes((d / "manifest.json").read_bytes().replace(b"0.2.0", b"0.9.0")),
     "bad signature"),
    (lambda d: (d / "manifest.sig").unlink(), "unsigned"),
])
def test_a_tampered_release_is_detected(released, keys, tmp_path, tamper, reason):
    copy = copy_release(released, tmp_path / "copy")
    tamper(copy)
    with pytest.raises(ReleaseError, match=reason):
        release.verify_release(copy, public(keys))


def test_a_release_from_another_key_is_named_as_such(released, tmp_path):
    other, _ = release.keygen(tmp_path / "other")
    with pytest.raises(ReleaseError, match="signed with key .*, not with key"):
        release.verify_release(released, json.loads((tmp_path / "other" / "ota_public.json").read_text()))


def test_release_refuses_bad_versions_unsafe_paths_and_used_directories(keys, released, tmp_path):
    key = keys / "ota_private.pem"
    with pytest.raises(ReleaseError, match="MAJOR.MINOR.PATCH"):
        release.release(key, "v2", "x64", tmp_path / "a", tree=released / "files")
    with pytest.raises(ReleaseError, match="not empty"):
        release.release(key, "0.3.0", "x64", released, tree=released / "files")
    assert not release.safe_path("../boot.py") and not release.safe_path("/main.py")
    assert not release.safe_path("lib//x.mpy") and release.safe_path("lib/x.mpy")


def test_release_of_a_given_tree_signs_exactly_that_tree(keys, tmp_path):
    tree = tmp_path / "tree"
    (tree / "lib").mkdir(parents=True)
    (tree / "main.py").write_text("print('v3')\n")
    (tree / "lib" / "a.mpy").write_bytes(b"M\x06a")
    manifest = release.release(keys / "ota_private.pem", "0.3.0", "xtensawin", tmp_path / "r", tree=tree)
    assert [(e["path"], e["size"]) for e in manifest["files"]] == [("lib/a.mpy", 3), ("main.py", 12)]
    assert release.verify_release(tmp_path / "r", public(keys))["arch"] == "xtensawin"


# -- ota serve --------------------------------------------------------------------------------------

def get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


@pytest.fixture
def served(released, keys):
    server = ota_server.make_server(released, "127.0.0.1", 0, public(keys))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_ota_serve_serves_exactly_the_release_files(served, released):
    manifest = json.loads((released / "manifest.json").read_bytes())
    for name in ("manifest.json", "manifest.sig"):
        response, body = get(served, "/" + name)
        assert response.status == 200 and body == (released / name).read_bytes()
        assert response.version == 10 and response.getheader("Content-Length") == str(len(body))
    for entry in manifest["files"]:
        response, body = get(served, "/files/" + entry["path"])
        assert response.status == 200 and hashlib.sha256(body).hexdigest() == entry["sha256"]


def test_ota_serve_answers_404_for_everything_else(served, released):
    (released / "files" / "stray.txt").write_text("not in the manifest")
    try:
        for path in ("/", "/files/", "/files/stray.txt", "/files/../manifest.json", "/etc/passwd",
                     "/files/lib/../../manifest.sig", "/manifest.json.bak"):
            response, _ = get(served, path)
            assert response.status == 404, path
    finally:
        (released / "files" / "stray.txt").unlink()


def test_ota_serve_refuses_a_broken_release(released, keys, tmp_path):
    copy = copy_release(released, tmp_path / "copy")
    (copy / "files" / "main.py").write_text("print('changed')\n")
    with pytest.raises(ReleaseError, match="main.py"):
        ota_server.make_server(copy, "127.0.0.1", 0)


# -- ota push (against the web API contract until the device side lands) ---------------------------

class FakeDongleApi(http.server.BaseHTTPRequestHandler):
    """POST /api/ota/push with HTTP Basic admin:<password>, as the web API contract states."""
    password = "s3cret"
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "Basic " + base64.b64encode(b"admin:" + self.password.encode()).decode()
        if self.headers.get("Authorization") != expected:
            status, answer = 401, {"error": "login required"}
        elif self.path != "/api/ota/push":
            status, answer = 404, {"error": "no such endpoint"}
        else:
            request = json.loads(body)
            self.received.append(request)
            status, answer = 202, {"ok": True, "message": "fetching %s" % request["url"]}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def dongle():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeDongleApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeDongleApi.received.clear()
    yield "http://127.0.0.1:%d" % server.server_port
    server.shutdown()
    server.server_close()


def test_ota_push_posts_the_release_url_with_the_password(dongle, capsys):
    assert cli.main(["ota", "push", "--device", dongle, "--url", "http://10.0.0.2:8080/",
                     "--password", "s3cret", "--force"]) == 0
    assert FakeDongleApi.received == [{"url": "http://10.0.0.2:8080/", "force": True}]
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_ota_push_reports_a_wrong_password_and_an_unreachable_device(dongle, capsys):
    assert cli.main(["ota", "push", "--device", dongle, "--url", "http://x/", "--password", "no"]) == 1
    assert "refused the password" in capsys.readouterr().err
    with pytest.raises(ota_server.PushError, match="cannot reach"):
        ota_server.push("http://127.0.0.1:1", "http://x/", "pw", timeout=5)
    assert FakeDongleApi.received == []
