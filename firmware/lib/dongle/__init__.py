"""The firmware runtime: what runs on the dongle around the decoding core (MQTT, spool, config, ...)."""
