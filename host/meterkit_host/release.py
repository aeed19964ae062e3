"""`meterkit keygen` and `meterkit release`: the signing key and signed release directories.

The contract with the device (dongle/ota.py, dongle/ota_verify.py):

    ota_private.pem      RSA-2048 private key, PKCS#8 PEM, mode 0600 (stays with the project owner)
    ota_public.json      {"n": "<hex>", "e": 65537, "key_id": "<sha256(n as 256 big-endian bytes)[:8] hex>"}
    DIR/manifest.json    {"format": 1, "version", "arch", "created", "key_id", "files": [{path, size, sha256}]}
    DIR/manifest.sig     256 raw bytes: RSASSA-PKCS1-v1_5 with SHA-256 over manifest.json's exact bytes
    DIR/files/<path>     each file of the app tree (paths relative to the app root)
"""
import datetime
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import tempfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .arguments import usage_error
from .progress import Progress

PRIVATE_NAME = "ota_private.pem"
PUBLIC_NAME = "ota_public.json"
KEY_BITS = 2048
FORMAT = 1
ARCHES = ("xtensawin", "x64", "rv32imc")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")


class ReleaseError(Exception):
    """A release or key that must not be used; the message says why, for a person."""


# -- keys -----------------------------------------------------------------------------------------

def key_id(n):
    """First 8 bytes of sha256 over the modulus as big-endian bytes, in hex: names the key."""
    return hashlib.sha256(n.to_bytes((n.bit_length() + 7) // 8, "big")).hexdigest()[:16]


def public_doc(public_key):
    numbers = public_key.public_numbers()
    return {"n": "%x" % numbers.n, "e": numbers.e, "key_id": key_id(numbers.n)}


def public_key_from_doc(doc):
    try:
        return rsa.RSAPublicNumbers(int(doc["e"]), int(doc["n"], 16)).public_key()
    except (KeyError, TypeError, ValueError) as error:
        raise ReleaseError("not an OTA public key (%s)" % error)


def keygen(out):
    """Write out/ota_private.pem (0600) and out/ota_public.json; never overwrite either."""
    out = pathlib.Path(out)
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise ReleaseError("%s exists: refusing to overwrite a signing key" % path)
    out.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # O_EXCL: a key that appeared meanwhile is not overwritten; 0600 from the first byte on
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_text(json.dumps(public_doc(key.public_key())) + "\n")
    return private_path, public_path


def load_private_key(path):
    try:
        key = serialization.load_pem_private_key(pathlib.Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ReleaseError("cannot read the signing key %s: %s" % (path, error))
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != KEY_BITS:
        raise ReleaseError("%s is not an RSA-2048 key (made by `meterkit keygen`)" % path)
    return key


def sign(key, data):
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


# -- releases -------------------------------------------------------------------------------------

def safe_path(path):
    """A manifest path is relative to the app root: no leading '/', no '..', no empty parts."""
    parts = path.split("/")
    return bool(path) and "\\" not in path and all(part not in ("", ".", "..") for part in parts)


def build_tree(arch, out):
    """The app tree (main.py source, everything else .mpy) via tools/build_mpy.py, with a bar."""
    tool = pathlib.Path(__file__).resolve().parents[2] / "tools" / "build_mpy.py"
    if not tool.exists():
        raise ReleaseError("tools/build_mpy.py not found: run from a meterkit source checkout")
    spec = importlib.util.spec_from_file_location("build_mpy", tool)
    build_mpy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_mpy)
    with Progress("compiling", len(build_mpy.sources())) as bar:
        build_mpy.build(arch, out, progress=lambda done, total: bar.update(done))


def tree_files(root):
    """[(path relative to root with '/', absolute Path)] sorted by path."""
    root = pathlib.Path(root)
    return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())


def manifest_bytes(version, arch, kid, root, created=None):
    created = created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    files = [{"path": rel, "size": path.stat().st_size,
              "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
             for rel, path in tree_files(root)]
    manifest = {"format": FORMAT, "version": version, "arch": arch, "created": created,
                "key_id": kid, "files": files}
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def release(key_path, version, arch, out, tree=None):
    """Write a signed release of the app tree (built now unless tree is given) into out."""
    if not VERSION_PATTERN.match(version):
        raise ReleaseError("version must be MAJOR.MINOR.PATCH (digits), got %r" % version)
    if arch not in ARCHES:
        raise ReleaseError("arch must be one of %s" % ", ".join(ARCHES))
    out = pathlib.Path(out)
    if out.exists() and any(out.iterdir()):
        raise ReleaseError("%s is not empty: a release directory is written once" % out)
    key = load_private_key(key_path)
    with tempfile.TemporaryDirectory(prefix="meterkit-release-") as scratch:
        if tree is None:
            tree = pathlib.Path(scratch) / "tree"
            build_tree(arch, tree)
        shutil.copytree(tree, out / "files", dirs_exist_ok=True)
    data = manifest_bytes(version, arch, public_doc(key.public_key())["key_id"], out / "files")
    (out / "manifest.json").write_bytes(data)
    (out / "manifest.sig").write_bytes(sign(key, data))
    return json.loads(data)


def read_manifest(release_dir):
    """The manifest of a release directory, its paths checked; ReleaseError says what is wrong."""
    try:
        manifest = json.loads(pathlib.Path(release_dir, "manifest.json").read_bytes())
        files = manifest["files"]
        bad = [entry["path"] for entry in files if not safe_path(entry["path"])]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ReleaseError("%s has no readable manifest.json (%s)" % (release_dir, error))
    if bad:
        raise ReleaseError("manifest lists unsafe paths: %s" % ", ".join(bad))
    return manifest


def verify_release(release_dir, public=None):
    """Check every file's size and SHA-256, and with a public key doc also the signature and key id.

    Returns the manifest; raises ReleaseError naming the first problem."""
    release_dir = pathlib.Path(release_dir)
    manifest = read_manifest(release_dir)
    if public is not None:
        try:
            signature = (release_dir / "manifest.sig").read_bytes()
        except OSError:
            raise ReleaseError("unsigned: %s/manifest.sig is missing" % release_dir)
        if manifest.get("key_id") != public.get("key_id"):
            raise ReleaseError("signed with key %s, not with key %s"
                               % (manifest.get("key_id"), public.get("key_id")))
        try:
            public_key_from_doc(public).verify(signature, (release_dir / "manifest.json").read_bytes(),
                                               padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ReleaseError("bad signature: manifest.json was changed or signed by another key")
    for entry in manifest["files"]:
        path = release_dir / "files" / entry["path"]
        try:
            data = path.read_bytes()
        except OSError:
            raise ReleaseError("missing file: %s" % entry["path"])
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ReleaseError("file does not match the manifest: %s" % entry["path"])
    return manifest


# -- the commands ---------------------------------------------------------------------------------

def add_command(commands):
    keygen_cmd = commands.add_parser("keygen", help="create the OTA signing key pair (once per project)")
    keygen_cmd.add_argument("--out", required=True, help="folder for ota_private.pem and ota_public.json")
    keygen_cmd.set_defaults(run=run_keygen)
    release_cmd = commands.add_parser("release", help="build and sign an OTA release directory")
    release_cmd.add_argument("--key", required=True, help="the private key from `meterkit keygen`")
    release_cmd.add_argument("--version", required=True, help="release version, MAJOR.MINOR.PATCH")
    release_cmd.add_argument("--arch", choices=ARCHES, default="xtensawin",
                             help="mpy-cross target: xtensawin (ESP32, S3), rv32imc (C3), x64 (unix port)")
    release_cmd.add_argument("--out", required=True, help="new (or empty) release directory")
    release_cmd.set_defaults(run=run_release)


def run_keygen(args):
    try:
        private_path, public_path = keygen(args.out)
    except ReleaseError as error:
        return usage_error(str(error))
    print("wrote %s (keep it secret, mode 0600) and %s (goes onto devices with `meterkit deploy`)"
          % (private_path, public_path))
    return 0


def run_release(args):
    try:
        manifest = release(args.key, args.version, args.arch, args.out)
    except ReleaseError as error:
        return usage_error(str(error))
    size = sum(entry["size"] for entry in manifest["files"])
    print("release %s for %s: %d files, %d bytes, signed with key %s, in %s"
          % (manifest["version"], manifest["arch"], len(manifest["files"]), size,
             manifest["key_id"], args.out))
    return 0
