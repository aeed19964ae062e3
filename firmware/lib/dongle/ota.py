"""Signed app updates over HTTP: fetch, verify, stage, switch (the device side of `meterkit release`).

    version = await install(app, "http://host:8080/", force=False)   # raises Rejected(why)
    manifest = await fetch_manifest(url, root)                        # verified, for checks

A release server has /manifest.json, /manifest.sig (RSA-2048 PKCS#1 v1.5 SHA-256 over the
manifest's exact bytes, checked against /keys/ota_public.json) and /files/<path>. Applying it:

    verified     manifest signed by our key, newer than the running version, for this arch
    staged-*     each file into /apps/<v>.tmp/ (unchanged ones copied from the running app, the
                 rest downloaded in CHUNK-byte pieces), size and SHA-256 checked as it streams
    renamed      /apps/<v>.tmp/ -> /apps/<v>/          (complete, or absent)
    switched     /ota/state.json says trial=<v>        (tmp + rename: the one atomic switch)

then the dongle reboots; the loader runs <v> on trial and health.py keeps it or rolls it back.
A power cut before the switch leaves the old version active; after it the trial runs. A
manifest entry "firmware.bin" is a firmware image: it is streamed into the next OTA partition
(hw/image.py), read back and hashed, and made the boot partition at the switch.
"""
import asyncio
import json
import os
import sys
from binascii import hexlify
from hashlib import sha256

from . import health, lazy
from .health import exists, kill_point, makedirs, read_state, remove_tree, write_state
from .ota_http import Rejected, get, get_bytes, split_url
from .ota_verify import public_key, verify

CHUNK = 1024
MAX_MANIFEST = 32768
KEY_FILE = "/keys/ota_public.json"
IMAGE = "firmware.bin"
# sys.implementation._mpy >> 10: MicroPython's .mpy architecture numbering
MPY_ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")


# where a test may cut the power (METERKIT_OTA_KILL=<step>, health.kill_point), in order
STEPS = ("verified", "staged-one", "staged-all", "renamed", "state-tmp", "switched",
         "trial-healthy", "confirm-tmp")


# -- the manifest -----------------------------------------------------------------------------------

def version_tuple(text):
    parts = text.split(".") if isinstance(text, str) else ()
    if len(parts) != 3 or [p for p in parts if not p.isdigit()]:
        raise Rejected("bad version %r in the manifest (MAJOR.MINOR.PATCH)" % (text,))
    return tuple(int(p) for p in parts)


def device_arch():
    mpy = getattr(sys.implementation, "_mpy", None)
    return None if mpy is None else MPY_ARCHES[(mpy >> 10) & 0x0F]


def safe_path(path):
    return (isinstance(path, str) and path and "\\" not in path
            and not [p for p in path.split("/") if p in ("", ".", "..")])


def load_key(root):
    try:
        with open(root + KEY_FILE) as f:
            return public_key(json.load(f))
    except OSError:
        raise Rejected("no OTA public key on the dongle (%s): deploy one with "
                       "`meterkit deploy --public-key`" % KEY_FILE)
    except ValueError as e:
        raise Rejected("%s: %s" % (KEY_FILE, e))


def check(data, signature, key):
    """The manifest document if data is signed by key and well formed; else Rejected(why)."""
    if signature is None:
        raise Rejected("unsigned release: the server has no manifest.sig")
    try:
        doc = json.loads(data)
    except ValueError:
        raise Rejected("manifest.json is not valid JSON")
    if not isinstance(doc, dict):
        raise Rejected("manifest.json is not a JSON object")
    if doc.get("key_id") != key.key_id:
        raise Rejected("release signed by a different key (%s); this dongle trusts key %s"
                       % (doc.get("key_id"), key.key_id))
    if not verify(key, data, signature):
        raise Rejected("bad signature: manifest.sig does not sign this manifest.json with key %s"
                       % key.key_id)
    if doc.get("format") != 1:
        raise Rejected("unknown manifest format %r" % (doc.get("format"),))
    version_tuple(doc.get("version"))
    arch = device_arch()
    if arch and doc.get("arch") != arch:
        raise Rejected("release is for %s, this dongle runs %s code" % (doc.get("arch"), arch))
    files = doc.get("files")
    if not isinstance(files, list) or not files:
        raise Rejected("the manifest lists no files")
    for entry in files:
        if not (isinstance(entry, dict) and safe_path(entry.get("path"))
                and type(entry.get("size")) is int and entry["size"] >= 0
                and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64):
            raise Rejected("bad file entry in the manifest: %r" % (entry,))
    return doc


async def fetch_manifest(url, root):
    """(manifest document, manifest bytes) from the release at url, verified."""
    key = load_key(root)
    server = split_url(url)
    data = await get_bytes(server, "manifest.json", MAX_MANIFEST)
    if data is None:
        raise Rejected("no release at %s (manifest.json: 404)" % url)
    return check(data, await get_bytes(server, "manifest.sig", 1024), key), data


def newer_check(doc, running, force):
    new, now = version_tuple(doc["version"]), version_tuple(running)
    if new == now:
        raise Rejected("%s is the running version" % running)
    if new < now and not force:
        raise Rejected("%s is older than the running %s (force to downgrade)"
                       % (doc["version"], running))


# -- staging ----------------------------------------------------------------------------------------

def file_sha256(path):
    h = sha256()
    buf = bytearray(CHUNK)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                return hexlify(h.digest()).decode()
            h.update(buf if n == CHUNK else buf[:n])


def _copy(source, dest):
    buf = bytearray(CHUNK)
    with open(source, "rb") as f, open(dest, "wb") as out:
        while True:
            n = f.readinto(buf)
            if not n:
                return
            out.write(buf if n == CHUNK else buf[:n])


def running_app_root():
    """Folder of the running app tree (apps/<v>, or the built-in one next to the loader)."""
    import dongle
    return dongle.__file__.rsplit("/", 3)[0] if dongle.__file__.count("/") >= 3 else ""


async def _download(server, entry, dest):
    h = sha256()
    with open(dest, "wb") as f:
        def sink(chunk):
            f.write(chunk)
            h.update(chunk)
        got = await get(server, "files/" + entry["path"], sink, entry["size"])
    if got is None:
        raise Rejected("%s is missing on the release server (404)" % entry["path"])
    if got != entry["size"]:
        raise Rejected("truncated download: %s: %d of %d bytes" % (entry["path"], got, entry["size"]))
    if hexlify(h.digest()).decode() != entry["sha256"]:
        raise Rejected("hash mismatch: %s does not have the SHA-256 the manifest states"
                       % entry["path"])


async def stage(server, doc, staging, current, progress):
    """Every app file into staging: copied when the running app has it unchanged, else fetched."""
    files = [entry for entry in doc["files"] if entry["path"] != IMAGE]
    for done, entry in enumerate(files):
        dest = staging + "/" + entry["path"]
        makedirs(dest.rsplit("/", 1)[0])
        here = current + "/" + entry["path"]
        if exists(here) and os.stat(here)[6] == entry["size"] and file_sha256(here) == entry["sha256"]:
            _copy(here, dest)
        else:
            await _download(server, entry, dest)
        progress("downloading %d/%d" % (done + 1, len(files)))
        if done == 0:
            kill_point("staged-one")


async def flash_image(server, entry, slot):
    """Stream the firmware image into the next partition in whole blocks, then read it back."""
    from .hw.image import BLOCK
    if entry["size"] > slot.size:
        raise Rejected("firmware image of %d bytes does not fit the %d-byte partition"
                       % (entry["size"], slot.size))
    block = bytearray(BLOCK)
    fill = [0, 0]   # bytes in block, offset of block in the partition

    def sink(chunk):
        chunk = memoryview(chunk)
        while chunk:
            n = min(len(chunk), BLOCK - fill[0])
            block[fill[0]:fill[0] + n] = chunk[:n]
            chunk, fill[0] = chunk[n:], fill[0] + n
            if fill[0] == BLOCK:
                slot.write(fill[1], block)
                fill[0], fill[1] = 0, fill[1] + BLOCK
    got = await get(server, "files/" + IMAGE, sink, entry["size"])
    if got != entry["size"]:
        raise Rejected("truncated download: %s: %s of %d bytes" % (IMAGE, got, entry["size"]))
    if fill[0]:
        block[fill[0]:] = b"\xff" * (BLOCK - fill[0])
        slot.write(fill[1], block)
    h = sha256()
    for at in range(0, entry["size"], BLOCK):
        h.update(slot.read(at, BLOCK)[:min(BLOCK, entry["size"] - at)])
    if hexlify(h.digest()).decode() != entry["sha256"]:
        raise Rejected("hash mismatch: the firmware image read back from the partition")


async def apply(url, root, running, force=False, progress=print):
    """Verify, stage, rename and switch: the release at url becomes the trial of the next boot."""
    state = read_state(root)
    if state["trial"]:
        raise Rejected("%s is on trial: wait until it is confirmed or rolled back" % state["trial"])
    doc, data = await fetch_manifest(url, root)
    newer_check(doc, running, force)
    version = doc["version"]
    kill_point("verified")
    server = split_url(url)
    staging, target = root + "/apps/" + version + ".tmp", root + "/apps/" + version
    remove_tree(staging)
    makedirs(staging)
    slot = None
    try:
        await stage(server, doc, staging, running_app_root(), progress)
        for entry in doc["files"]:
            if entry["path"] == IMAGE:
                from .hw.image import next_slot
                slot = next_slot(root)
                await flash_image(server, entry, slot)
        with open(staging + "/manifest.json", "wb") as f:
            f.write(data)
    except BaseException:
        remove_tree(staging)   # a rejected update leaves nothing behind
        raise
    kill_point("staged-all")
    remove_tree(target)        # a leftover of an earlier, rolled-back attempt
    os.rename(staging, target)
    kill_point("renamed")
    if slot is not None:
        slot.set_boot()
    state.update(trial=version, boots=0, last_error=None)
    write_state(root, state, "state-tmp")
    kill_point("switched")
    return version


# -- in the running dongle --------------------------------------------------------------------------

async def install(app, url, force=False):
    """apply() for the running App, with its status in app.stats; reboots into the trial."""
    stats = app.stats
    if (stats.get("ota_status") or "").startswith(("checking", "downloading")):
        raise Rejected("an update is already running")
    if health.BOOT["mode"] == "trial":
        raise Rejected("this version is on trial: wait until it is confirmed")

    def progress(text):
        stats["ota_status"] = text
    progress("checking %s" % url)
    try:
        version = await apply(url, health.BOOT["root"], stats["version"], force, progress)
    except Rejected as e:
        stats["ota_status"], stats["ota_error"] = "rejected", str(e)
        app.say("ota: rejected:", e)
        raise
    except Exception as e:   # a full flash, a broken socket: nothing was switched
        stats["ota_status"], stats["ota_error"] = "failed", "%s: %s" % (type(e).__name__, e)
        app.say("ota: failed:", stats["ota_error"])
        raise Rejected(stats["ota_error"])
    stats["ota_status"], stats["ota_error"] = "installed %s" % version, None
    app.say("ota: %s installed, rebooting into it on trial" % version)
    app.reboot = True
    app.request_restart()
    return version


async def check_for_update(app):
    """One check of ota.url (the App runs it every ota.check_interval_s): note the latest
    version, tell Home Assistant, install it if ota.auto_install allows."""
    ota = app.cfg["ota"]
    try:
        doc, _ = await fetch_manifest(ota["url"], health.BOOT["root"])
    except Rejected as e:
        app.stats["ota_error"] = "check: %s" % e
        return
    app.stats["ota_latest"] = doc["version"]
    await lazy("ota_entity", "publish_state", app)()
    if ota["auto_install"] and version_tuple(doc["version"]) > version_tuple(app.stats["version"]):
        try:
            await install(app, ota["url"])
        except Rejected:
            pass   # the reason is in stats["ota_error"]
