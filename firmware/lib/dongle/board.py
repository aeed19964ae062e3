"""Board definitions: which pins and UART a dongle uses (boards/<name>/board.json).

`generic` is the board-independent default built in here: UART 2 on GPIO16/17, no hardware
inverter, no request pin. A board file only states what differs; missing fields keep these.
"""
import json

GENERIC = {
    "description": "board-independent default: UART 2, RX GPIO16, TX GPIO17",
    "chip": "esp32",
    "uart": {"id": 2, "rx": 16, "tx": 17, "rxbuf": 4096},
    "inverts_rx": False,
    "request_pin": None,
    "rs485_de": None,       # RS485 transceiver: the DE/RE pin (high while sending); null: auto-direction
    "led": None,
    "button": None,
    "default_profile": "dsmr5",
}
MIN_RXBUF = 4096   # 115200 baud is 11.5 KB/s: the buffer must bridge a slow flash write


def load(name, roots):
    """The board called name, looked up in each of roots (folders holding boards/<name>/).

    Raises ValueError with a readable reason when the file is missing or wrong."""
    board = dict(GENERIC)
    board["uart"] = dict(GENERIC["uart"])
    board["name"] = name
    if name == "generic":
        return board
    for root in roots:
        path = "%s/%s/board.json" % (root, name)
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        try:
            given = json.loads(text)
        except ValueError:
            raise ValueError("%s is not valid JSON" % path)
        return _merge(board, given, path)
    raise ValueError("no board named %r (looked in %s)" % (name, ", ".join(roots)))


def _merge(board, given, path):
    if not isinstance(given, dict):
        raise ValueError("%s: must be a JSON object" % path)
    for key in given:
        if key not in board:
            raise ValueError("%s: unknown field %r" % (path, key))
        board[key] = given[key]
    uart = dict(GENERIC["uart"])
    uart.update(board["uart"] if isinstance(board["uart"], dict) else {})
    for field in ("id", "rx", "tx", "rxbuf"):
        if type(uart[field]) is not int or uart[field] < 0:
            raise ValueError("%s: uart.%s must be a whole number" % (path, field))
    uart["rxbuf"] = max(uart["rxbuf"], MIN_RXBUF)
    board["uart"] = uart
    for pin in ("request_pin", "rs485_de"):
        if board[pin] is not None and type(board[pin]) is not int:
            raise ValueError("%s: %s must be a GPIO number or null" % (path, pin))
    return board
