"""Test-only custom integration for tests/test_homeassistant.py: compiles the recorder's
statistics now instead of at the next 5-minute mark.

    {"type": "meterkit_probe/compile_statistics"}  ->  {"periods": [start, ...]}

It queues the recorder's own StatisticsTask (what its 5-minute timer queues) for the period
that holds the states recorded so far, and the one before, and waits until the recorder has
run them.
"""
from datetime import timedelta

import voluptuous as vol

from homeassistant.components import websocket_api
from homeassistant.components.recorder import get_instance
from homeassistant.components.recorder.tasks import StatisticsTask
from homeassistant.util import dt as dt_util

DOMAIN = "meterkit_probe"


async def async_setup(hass, config):
    websocket_api.async_register_command(hass, compile_statistics)
    return True


@websocket_api.websocket_command({vol.Required("type"): "meterkit_probe/compile_statistics"})
@websocket_api.async_response
async def compile_statistics(hass, connection, msg):
    recorder = get_instance(hass)
    await recorder.async_block_till_done()          # every state so far is in the database
    now = dt_util.utcnow()
    start = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    periods = [start - timedelta(minutes=5), start]
    for period in periods:
        recorder.queue_task(StatisticsTask(period, True))
    await recorder.async_block_till_done()          # the tasks ran, their rows are committed
    connection.send_result(msg["id"], {"periods": [p.isoformat() for p in periods]})
