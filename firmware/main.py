"""The loader: picks the app tree from /ota/state.json, counts the boot, runs it.

ESP32: /main.py, after boot.py. Unix port: `micropython firmware/main.py DATA_DIR [...]`, where
DATA_DIR plays the device's root (config.json, apps/, ota/, keys/).

    state.trial set        run apps/<trial> (dongle.health confirms it or rolls it back); a trial
                           that fails at boot or started TRIAL_BOOTS times unconfirmed: back to
                           the active version, last_error says why
    boots > SAFE_MODE_BOOTS   safe mode: Wi-Fi, web page and OTA only (dongle.safe_mode)
    otherwise              apps/<active>, or the built-in app in lib/ next to this file

Self-contained on purpose: it must work whatever the app trees contain.
"""
import json
import os
import sys

TRIAL_BOOTS = 2
SAFE_MODE_BOOTS = 5
ESP32 = sys.platform.startswith("esp32")
HERE = "" if ESP32 else (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".")


def root_dir(argv):
    """The device's root; on unix the same folder as dongle.hw.unix.data_dir."""
    if ESP32:
        return ""
    folder = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
    return folder or os.getenv("METERKIT_DIR") or "meterkit-data"


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def read_state(root):
    state = {"active": None, "previous": None, "trial": None, "boots": 0, "last_error": None}
    try:
        with open(root + "/ota/state.json") as f:
            state.update(json.load(f))
    except (OSError, ValueError, TypeError):
        pass
    return state


def write_state(root, state):
    for folder in (root, root + "/ota"):
        if folder and not exists(folder):
            os.mkdir(folder)
    with open(root + "/ota/state.json.tmp", "w") as f:
        f.write(json.dumps(state))
    os.rename(root + "/ota/state.json.tmp", root + "/ota/state.json")


def roll_back(state, why):
    print("boot:", why)
    state.update(trial=None, boots=0, last_error=why)


def choose(root, state):
    """(version or None for the built-in app, mode); counts this boot in state."""
    trial = state["trial"]
    if trial and not exists("%s/apps/%s/lib" % (root, trial)):
        roll_back(state, "%s rolled back: its app tree is missing" % trial)
    elif trial and state["boots"] >= TRIAL_BOOTS:
        roll_back(state, "%s rolled back: started %d times without becoming healthy"
                  % (trial, state["boots"]))
    state["boots"] += 1
    if state["trial"]:
        return trial, "trial"
    mode = "safe" if state["boots"] > SAFE_MODE_BOOTS else "normal"
    active = state["active"]
    if active and exists("%s/apps/%s/lib" % (root, active)):
        return active, mode
    if active:
        state["last_error"] = "app %s is missing: running the built-in app" % active
    return None, mode


def forget_app(lib):
    """Unix: unload the app's modules so the next boot imports another tree."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("dongle", "meterkit"):
            del sys.modules[name]
    if lib in sys.path:
        sys.path.remove(lib)


def boot(root, argv):
    """Run one boot; True: boot again (an in-process reboot on the unix port)."""
    state = read_state(root)
    version, mode = choose(root, state)
    write_state(root, state)
    lib = "%s/apps/%s/lib" % (root, version) if version else HERE + "/lib"
    sys.path.insert(0, lib)
    print("boot: app %s (%s) from %s" % (version or "built-in", mode, lib))
    try:
        from dongle import health
        health.booted(root, version, mode)
        if mode == "safe":
            from dongle.safe_mode import main
        else:
            from dongle.app import main
        again = main(argv) == "reboot"
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        why = "%s failed at boot: %s: %s" % (version or "built-in app", type(e).__name__, e)
        state = read_state(root)
        if mode != "trial":
            state["last_error"] = why
            write_state(root, state)
            if ESP32:
                sys.print_exception(e)
                import machine
                machine.reset()   # counted at the next boot: safe mode after a few
            raise
        roll_back(state, "%s rolled back: %s" % (version, why))
        write_state(root, state)
        sys.print_exception(e)
        again = True
    forget_app(lib)
    if again and ESP32:
        import machine
        machine.reset()
    if again:
        import asyncio
        asyncio.new_event_loop()
    return again


def main():
    root = root_dir(sys.argv)
    while boot(root, sys.argv):
        import gc
        gc.collect()


main()
