"""Which app booted, and whether it is healthy: the other half of the loader (/main.py).

The loader picks the app from /ota/state.json, counts the boot and calls booted(). For the next
ota.trial_s seconds the App's `ota` task watches it: watch_trial() on a trial boot, stayed_up()
at the end of any other:

* a trial (a freshly installed version) becomes the active one as soon as meter decoding works
  and MQTT or the web server is up; if that does not happen in time, it is rolled back: the state
  names the previous version again, last_error says why, and the dongle reboots into it;
* any other boot that stays up for trial_s seconds clears the boot counter (the loader counts
  boots that never got that far and starts safe mode after SAFE_MODE_BOOTS of them).

    {"active": "0.1.0", "previous": null, "trial": null|"0.2.0", "boots": 0, "last_error": null}
"""
import asyncio
import json
import os

from . import BOOT, exists   # BOOT: set by the loader through booted()

STATE = "/ota/state.json"


def booted(root, version, mode):
    """Called by the loader: root of the device, app version (None: the built-in app), mode
    "normal" | "trial" | "safe"."""
    BOOT.update(root=root, version=version, mode=mode)


def version(default):
    return BOOT["version"] or default


def empty_state():
    return {"active": None, "previous": None, "trial": None, "boots": 0, "last_error": None}


def read_state(root):
    state = empty_state()
    try:
        with open(root + STATE) as f:
            doc = json.load(f)
        if isinstance(doc, dict):
            state.update(doc)
    except (OSError, ValueError):
        pass   # no state yet (or unreadable): the built-in app, no trial
    return state


def write_state(root, state, step=None):
    """Write state.json.tmp, then rename it over state.json: a power cut keeps one or the other.
    step: the name of the kill point between the two (tests)."""
    path = root + STATE
    makedirs(path.rsplit("/", 1)[0])
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(state))
    if step:
        kill_point(step)
    os.rename(path + ".tmp", path)


def kill_point(step):
    """Test hook (unix port): METERKIT_OTA_KILL=step ends this process with SIGKILL right here,
    as a power cut would. Nothing on the ESP32 (no getenv)."""
    getenv = getattr(os, "getenv", None)
    if getenv and getenv("METERKIT_OTA_KILL") == step:
        print("ota: power cut at", step)
        os.system("kill -9 $PPID")


def makedirs(path):
    built = ""
    for part in path.split("/"):
        built = built + "/" + part if built or path.startswith("/") else part
        if part and not exists(built):
            os.mkdir(built)


def remove_tree(path):
    """rm -r without recursion limits worth worrying about (app trees are a few levels deep)."""
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        try:
            os.remove(path)
        except OSError:
            pass
        return
    for entry in entries:
        child = path + "/" + entry[0]
        if entry[1] == 0x4000:
            remove_tree(child)
        else:
            os.remove(child)
    os.rmdir(path)


def report(stats=None):
    """For /api/status and diagnostics: the booted version and mode, and the last OTA problem."""
    state = read_state(BOOT["root"])
    info = {"version": BOOT["version"], "mode": BOOT["mode"], "active": state["active"],
            "previous": state["previous"], "trial": state["trial"], "boots": state["boots"],
            "last_error": state["last_error"]}
    if stats is not None:
        info["latest"] = stats.get("ota_latest")
        info["status"] = stats.get("ota_status")
    return info


# -- the watch ------------------------------------------------------------------------------------

async def web_up(port):
    """True if the dongle's own web server accepts a connection."""
    if not port:
        return False
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        return True
    except OSError:
        return False


async def healthy(app):
    """(ok, why not): meter decoding works, and MQTT or the web server is up."""
    if not app.stats["readings"]:
        return False, "no meter reading decoded (%s)" % (app.stats.get("meter_error") or
                                                        app.stats.get("last_error") or "no data")
    if app.publisher is not None and app.publisher.connected:
        return True, None
    if await web_up(app.cfg["http"]["port"]):
        return True, None
    return False, "neither MQTT nor the web server is up (%s)" % app.stats.get("mqtt_error")


def last_error():
    """Why the last update or trial failed, if it did (for the diagnostics)."""
    return read_state(BOOT["root"])["last_error"]


async def watch_trial(app):
    """Confirm the trial once it is healthy, or roll it back after ota.trial_s seconds."""
    root = BOOT["root"]
    trial_s = app.cfg["ota"]["trial_s"]
    why = None
    for _ in range(trial_s):
        await asyncio.sleep(1)
        ok, why = await healthy(app)
        if ok:
            kill_point("trial-healthy")
            confirm(root)
            app.say("ota: %s is healthy, now the active version" % BOOT["version"])
            return
    roll_back(root, "%s rolled back: not healthy within %d s: %s" % (BOOT["version"], trial_s, why))
    app.say("ota: %s rolled back: %s" % (BOOT["version"], why))
    app.reboot = True
    app.request_restart(0)


def stayed_up():
    """A boot that stayed up ota.trial_s seconds: clear the loader's boot counter."""
    state = read_state(BOOT["root"])
    if state["boots"]:
        state["boots"] = 0
        write_state(BOOT["root"], state)


def confirm(root):
    """The trial is healthy: it becomes the active version; keep it and the one before, no more."""
    state = read_state(root)
    if not state["trial"]:
        return
    if state["active"] != state["trial"]:
        state["previous"] = state["active"]
    state.update(active=state["trial"], trial=None, boots=0, last_error=None)
    write_state(root, state, "confirm-tmp")
    from .hw import image
    image.mark_valid(root)
    prune(root, (state["active"], state["previous"]))


def roll_back(root, why):
    state = read_state(root)
    state.update(trial=None, boots=0, last_error=why)
    write_state(root, state)


def prune(root, keep):
    """Remove app trees other than keep, and staging leftovers of interrupted updates."""
    try:
        names = [entry[0] for entry in os.ilistdir(root + "/apps")]
    except OSError:
        return
    for name in names:
        if name not in keep:
            remove_tree(root + "/apps/" + name)
