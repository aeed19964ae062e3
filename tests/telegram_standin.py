"""A stand-in for the Telegram Bot API on 127.0.0.1, started by a test: it keeps every message
sendMessage delivered, serves getUpdates from a list (long polling as the real API does: it waits
up to `timeout` s for an update), and fails on demand.

    with BotApiStandIn(TOKEN) as api:         # api.url is the sink's api_url
        api.failing = "500"                   # or "429" (retry_after 1), "hang" (no answer for
        api.add_update(42, "/status")         # hang_s), None: answer
        api.wait_for(lambda: api.texts())

Replies follow the Bot API's shape: {"ok": true, "result": …} or {"ok": false, "error_code",
"description", "parameters": {"retry_after"}}; a wrong token gets 401.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class BotApiStandIn:
    def __init__(self, token, chats=(42,)):
        self.token, self.chats = token, chats
        self.sent = []            # the bodies of delivered sendMessage calls, in order
        self.attempts = []        # (method, what happened) for every request
        self.offsets = []         # the offset of every getUpdates
        self.updates = []
        self.failing = None
        self.hang_s = 2.5
        self.changed = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.next_id = 1

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add_update(self, chat, text, raw=None):
        """A message from chat; raw: the update's other fields as given (odd updates)."""
        with self.changed:
            self.updates.append(dict(raw, update_id=self.next_id) if raw is not None else {
                "update_id": self.next_id, "message": {"message_id": self.next_id,
                                                       "chat": {"id": chat, "type": "private"},
                                                       "text": text}})
            self.next_id += 1
            self.changed.notify_all()

    def texts(self, fragment=""):
        with self.changed:
            return [m["text"] for m in self.sent if fragment in m["text"]]

    def wait_for(self, condition, timeout=30):
        with self.changed:
            assert self.changed.wait_for(condition, timeout), \
                "the stand-in never saw that; sent: %s" % [m["text"] for m in self.sent]
            return condition()

    # -- the API's side -------------------------------------------------------------------------

    def answer(self, method, params):
        """(status, reply document) for one call."""
        failing = self.failing
        if not failing and method == "sendMessage" and params.get("chat_id") not in self.chats:
            self._attempt(method, "400")
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: chat not found"}
        self._attempt(method, failing or "ok")
        if failing == "hang":
            time.sleep(self.hang_s)
            return 504, {"ok": False, "error_code": 504, "description": "Gateway Timeout"}
        if failing == "500":
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if failing == "429":
            return 429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1},
                         "description": "Too Many Requests: retry after 1"}
        if method == "sendMessage":
            if not isinstance(params.get("text"), str) or "chat_id" not in params:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request"}
            with self.changed:
                self.sent.append(params)
                self.changed.notify_all()
                return 200, {"ok": True, "result": {"message_id": len(self.sent)}}
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._updates(params)}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _attempt(self, method, outcome):
        with self.changed:
            self.attempts.append((method, outcome))
            self.changed.notify_all()

    def _updates(self, params):
        offset = params.get("offset", 0)
        with self.changed:
            self.offsets.append(offset)
            self.updates = [u for u in self.updates if u.get("update_id", 0) >= offset]
            self.changed.wait_for(lambda: self.updates, min(params.get("timeout", 0), 5))
            return list(self.updates)


def _handler(api):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            prefix = "/bot%s/" % api.token
            length = int(self.headers.get("Content-Length") or 0)
            try:
                params = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                params = None
            if not self.path.startswith(prefix):
                status, doc = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            elif not isinstance(params, dict):
                status, doc = 400, {"ok": False, "error_code": 400, "description": "Bad Request"}
            else:
                status, doc = api.answer(self.path[len(prefix):], params)
            body = json.dumps(doc).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass   # the client gave up waiting (a "hang")

        def log_message(self, *args):
            pass
    return Handler
