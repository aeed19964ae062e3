"""Stand-in for MicroPython's `network` on the ESP32 port: a test fixture, not product code.

Models network.WLAN as documented, with the ESP32 port's status codes and its reconnect logic:

* WLAN(STA_IF | AP_IF) returns the one object of that interface; active([bool]); most methods
  want an active interface ("Wifi Not Started").
* connect(ssid, key): the driver keeps reconnecting (config reconnects=-1, the default) until it
  gets an address or disconnect() is called; while it does, status() is STAT_CONNECTING and the
  failure (STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD, STAT_BEACON_TIMEOUT) shows only once the
  reconnects given by config(reconnects=n) are spent or after disconnect(). connect() while the
  driver is still connecting raises OSError "Wifi Internal Error" (micropython#7139, #17661).
* status('rssi') (STA, connected), isconnected(), ifconfig() 4-tuple, config(essid=...,
  authmode=..., reconnects=...) / config('essid'); scan() -> [(ssid, bssid, channel, RSSI,
  authmode, hidden)] with bytes ssid/bssid, STA only. AP address 192.168.4.1.

Time passes per poll: each isconnected()/status() call is one association attempt. The radio
is AIR (test hook): the networks in range, as dicts ssid/password/rssi/authmode/channel.
"""
STA_IF, AP_IF = 0, 1
STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
STAT_BEACON_TIMEOUT, STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 200, 201, 202
STAT_ASSOC_FAIL, STAT_HANDSHAKE_TIMEOUT = 203, 204
AUTH_OPEN, AUTH_WEP, AUTH_WPA_PSK, AUTH_WPA2_PSK, AUTH_WPA_WPA2_PSK = 0, 1, 2, 3, 4

AIR = []        # networks in range (test hook)
ATTEMPTS = 2    # polls an association takes


def drop():
    """Test hook: the access point went away under a connected station (beacon timeout)."""
    sta = WLAN(STA_IF)
    sta.connected, sta.reason, sta.attempts = False, STAT_BEACON_TIMEOUT, 0


class WLAN:
    _made = {}

    def __new__(cls, interface_id=STA_IF):
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        if interface_id not in cls._made:
            self = object.__new__(cls)
            self.if_id, self.up = interface_id, False
            self.requested = self.connected = False
            self.reason, self.attempts, self.reconnects, self.target = 0, 0, -1, None
            self.settings = {"essid": "ESP_123456", "authmode": AUTH_OPEN, "channel": 1}
            cls._made[interface_id] = self
        return cls._made[interface_id]

    def __init__(self, interface_id=STA_IF):
        pass

    def active(self, *up):
        if up:
            self.up = bool(up[0])
            if not self.up:
                self.requested = self.connected = False
        return self.up

    def _started(self):
        if not self.up:
            raise OSError("Wifi Not Started")

    def _sta(self):
        if self.if_id != STA_IF:
            raise OSError("STA required")

    def connect(self, ssid=None, key=None, *, bssid=None):
        self._sta()
        self._started()
        if self.requested and not self.connected:
            raise OSError("Wifi Internal Error")   # "sta is connecting, return error"
        if ssid is not None:
            self.target = (ssid, key or "")
        self.requested, self.connected, self.attempts = True, False, 0

    def disconnect(self):
        self._sta()
        self.requested = self.connected = False

    def _associate(self):
        """One attempt of the driver: joins, or records why not."""
        if self.connected or not self.requested or self.target is None or not self._retrying():
            return
        self.attempts += 1
        if self.attempts < ATTEMPTS:
            return
        ssid, key = self.target
        found = [n for n in AIR if isinstance(n["ssid"], str) and n["ssid"] == ssid]
        if not found:
            self.reason = STAT_NO_AP_FOUND
        elif found[0]["authmode"] != AUTH_OPEN and found[0]["password"] != key:
            # many access points never say "wrong password": ESP-IDF then reports a timed-out
            # WPA handshake instead (a network entry may ask for that with wrong_key=204)
            self.reason = found[0].get("wrong_key", STAT_WRONG_PASSWORD)
        else:
            self.connected, self.reason, self.rssi = True, 0, found[0]["rssi"]

    def _retrying(self):
        return self.reconnects < 0 or self.attempts - ATTEMPTS < self.reconnects + 1

    def isconnected(self):
        if self.if_id == AP_IF:
            return False   # no station joined
        self._associate()
        return self.connected

    def status(self, *param):
        if param:
            if param[0] != "rssi":
                raise ValueError("unknown status param")
            self._sta()
            if not self.connected:
                raise OSError("Wifi Not Connected")   # esp_wifi_sta_get_ap_info fails
            return self.rssi
        if self.if_id != STA_IF:
            return None
        self._associate()
        if self.connected:
            return STAT_GOT_IP
        if self.requested and self._retrying():
            return STAT_CONNECTING
        return self.reason or STAT_IDLE

    def ifconfig(self, *config):
        if self.if_id == AP_IF:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        if self.connected:
            return ("192.168.1.23", "255.255.255.0", "192.168.1.1", "192.168.1.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *name, **values):
        if name and values:
            raise TypeError("either pos or kw args are allowed")
        for key in values:
            if key not in ("essid", "ssid", "authmode", "security", "password", "key",
                           "channel", "hidden", "reconnects", "dhcp_hostname", "txpower"):
                raise ValueError("unknown config param")
        if "reconnects" in values:
            self._sta()
            self.reconnects = values["reconnects"]
        self.settings.update(values)
        if name:
            if name[0] not in self.settings:
                raise ValueError("unknown config param")
            return self.settings[name[0]]
        return None

    def scan(self):
        self._sta()
        if not self.up:
            raise OSError("STA must be active")
        return [(n["ssid"] if isinstance(n["ssid"], bytes) else n["ssid"].encode(),
                 bytes((0x24, 0x0a, 0xc4, 0, 0, i)), n.get("channel", 6), n["rssi"], n["authmode"],
                 False) for i, n in enumerate(AIR)]
