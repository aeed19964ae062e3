"""Home Assistant's `update` entity for the dongle's firmware (MQTT discovery).

Pure functions return (topic, payload) like topics.py; attach(app) wires them into the running
publisher: config and state go out retained right after the meter's discovery configs (on every
connect, and when HA comes online), and HA's "Install" button arrives on the command topic and
starts an update from ota.url.

    <prefix>/update/meterkit_<node>/firmware/config    the discovery config
    <base>/<node>/ota            {"installed_version", "latest_version", "title", "in_progress"}
    <base>/<node>/ota/install    <- "install"
"""
from meterkit.reading import json_string, json_value

from . import lazy

INSTALL = "install"


def _object(pairs):
    return ("{" + ", ".join(json_string(k) + ": " + v for k, v in pairs) + "}").encode()


def state_topic(base, node):
    return "%s/%s/ota" % (base, node)


def command_topic(base, node):
    return "%s/%s/ota/install" % (base, node)


def discovery(base, prefix, node, device, status):
    """device: the HA device the entity joins (discovery.py's "<node>_<HA key>", so the meter's
    sensors and the firmware share one device); status: the topic with the dongle's last will."""
    object_id = "meterkit_" + node
    return "%s/update/%s/firmware/config" % (prefix, object_id), _object((
        ("name", json_string("Firmware")),
        ("unique_id", json_string(object_id + "_firmware")),
        ("device_class", json_string("firmware")),
        ("entity_category", json_string("config")),
        ("state_topic", json_string(state_topic(base, node))),
        ("command_topic", json_string(command_topic(base, node))),
        ("payload_install", json_string(INSTALL)),
        ("availability_topic", json_string(status)),
        ("device", "{%s: [%s]}" % (json_string("identifiers"), json_string(device)))))


def state(base, node, installed, latest=None, in_progress=False):
    """latest None: nothing newer known, so HA shows the installed version as the latest."""
    return state_topic(base, node), _object((
        ("installed_version", json_string(installed)),
        ("latest_version", json_string(latest or installed)),
        ("title", json_string("meterkit")),
        ("in_progress", json_value(bool(in_progress)))))


# -- wiring into the running App --------------------------------------------------------------------

def messages(app):
    p = app.publisher
    stats = app.stats
    busy = (stats.get("ota_status") or "").startswith(("checking", "downloading"))
    if p.device == app.node:
        return []   # no meter known yet, so no HA device to join: announced after its reading
    return [discovery(p.base, p.prefix, app.node, app.node + "_" + p.key, p.availability[0]),
            state(p.base, app.node, stats["version"], stats.get("ota_latest"), busy)]


def attach(app):
    """Announce the entity with the meter's configs; HA's install command starts an update from
    ota.url."""
    p = app.publisher
    p.extras["ota_entity"] = lazy("ota_entity", "messages", app)   # attached again: replaced
    p.commands[command_topic(p.base, app.node)] = lazy("ota_entity", "install_command", app)


def install_command(app, payload):
    import asyncio
    if payload != INSTALL.encode():
        return
    if not app.cfg["ota"]["url"]:
        app.stats["ota_error"] = "install from Home Assistant: no ota.url configured"
        return

    async def run():
        from .ota import Rejected, install
        try:
            await install(app, app.cfg["ota"]["url"])
        except Rejected:
            await publish_state(app)   # the reason is in the diagnostics' ota_error
    asyncio.create_task(run())


async def publish_state(app):
    p = app.publisher
    if p is None or not p.connected or not app.cfg["publish"]["ha_discovery"]:
        return
    found = messages(app)
    if not found:
        return
    topic, payload = found[1]
    try:
        await p.client.publish(topic, payload, retain=True, qos=0)
    except Exception:
        pass   # the next connect sends it again
