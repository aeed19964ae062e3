"""`meterkit ota serve DIR` (a local update server) and `meterkit ota push` (start an update).

serve answers exactly GET /manifest.json, /manifest.sig and /files/<path> for the paths the
manifest lists (HTTP/1.0, Content-Length); anything else is 404. push asks a dongle, through its
authenticated web API, to fetch and apply the release at a URL:

    POST /api/ota/push  {"url": "http://host:8080/", "force": false}   (HTTP Basic, user admin)
"""
import base64
import getpass
import http.client
import http.server
import json
import os
import pathlib
import socket
import sys
import urllib.parse

from .arguments import usage_error
from .release import ReleaseError, verify_release

DEFAULT_PORT = 8080
PASSWORD_VARIABLE = "METERKIT_PASSWORD"


# -- serve ----------------------------------------------------------------------------------------

def routes(release_dir, manifest):
    """URL path -> file, for exactly the files a device may fetch."""
    release_dir = pathlib.Path(release_dir)
    table = {"/manifest.json": release_dir / "manifest.json",
             "/manifest.sig": release_dir / "manifest.sig"}
    for entry in manifest["files"]:
        table["/files/" + entry["path"]] = release_dir / "files" / entry["path"]
    return table


def make_server(release_dir, host="0.0.0.0", port=DEFAULT_PORT, public=None, log=None):
    """A ready HTTP server for the release (checked first: a broken release is not served)."""
    manifest = verify_release(release_dir, public)
    table = routes(release_dir, manifest)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            path = table.get(urllib.parse.unquote(self.path.split("?", 1)[0]))
            body = path.read_bytes() if path and path.exists() else None
            self.send_response(200 if body is not None else 404)
            body = b"not found\n" if body is None else body
            content_type = "application/json" if self.path.endswith(".json") else "application/octet-stream"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *values):
            if log:
                log("%s %s" % (self.address_string(), fmt % values))

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.manifest = manifest
    return server


def lan_address():
    """This host's address on the network the default route uses (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))   # TEST-NET-1: never routed anywhere real
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


# -- push -----------------------------------------------------------------------------------------

class PushError(Exception):
    """The device refused or could not be reached; the message says why."""


def push(device, url, password, force=False, timeout=30):
    """POST the release URL to the device; returns the device's JSON answer."""
    target = urllib.parse.urlsplit(device if "://" in device else "http://" + device)
    if target.scheme not in ("http", "https"):
        raise PushError("--device must be an http:// or https:// URL")
    connection_class = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(target.hostname, target.port, timeout=timeout)
    token = base64.b64encode(("admin:%s" % password).encode()).decode()
    body = json.dumps({"url": url, "force": force})
    try:
        connection.request("POST", target.path.rstrip("/") + "/api/ota/push", body,
                           {"Content-Type": "application/json", "Authorization": "Basic " + token})
        response = connection.getresponse()
        status, data = response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        raise PushError("cannot reach %s: %s" % (device, error))
    finally:
        connection.close()
    try:
        answer = json.loads(data) if data else {}
    except ValueError:
        answer = {"error": data.decode("utf-8", "replace").strip()}
    if status == 401:
        raise PushError("the device refused the password (401)")
    if status >= 300:
        raise PushError("the device answered %d: %s" % (status, answer.get("error", answer)))
    return answer


# -- the commands ---------------------------------------------------------------------------------

def add_command(commands):
    ota = commands.add_parser("ota", help="serve a release, or push one to a dongle")
    actions = ota.add_subparsers(dest="action", required=True)
    serve = actions.add_parser("serve", help="serve a release directory over HTTP")
    serve.add_argument("dir", help="release directory from `meterkit release`")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    serve.add_argument("--public-key", help="ota_public.json: also check the signature before serving")
    serve.set_defaults(run=run_serve)
    push_cmd = actions.add_parser("push", help="tell a dongle to fetch and apply a release")
    push_cmd.add_argument("--device", required=True,
                          help="the dongle's web address, e.g. http://192.168.1.50")
    push_cmd.add_argument("--url", required=True,
                          help="where the dongle fetches the release (an `ota serve` URL)")
    push_cmd.add_argument("--password", help="admin password (default: $%s, else asked)" % PASSWORD_VARIABLE)
    push_cmd.add_argument("--force", action="store_true", help="also install an older version")
    push_cmd.set_defaults(run=run_push)


def run_serve(args):
    try:
        public = json.loads(pathlib.Path(args.public_key).read_text()) if args.public_key else None
        server = make_server(args.dir, args.bind, args.port, public,
                             log=lambda line: sys.stderr.write(line + "\n"))
    except (ReleaseError, OSError, ValueError) as error:
        return usage_error(str(error))
    manifest = server.manifest
    host = lan_address() if args.bind == "0.0.0.0" else args.bind
    print("serving release %s (%s, %d files) at http://%s:%d/  (Ctrl-C stops)"
          % (manifest["version"], manifest["arch"], len(manifest["files"]), host, server.server_port),
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def run_push(args):
    password = args.password or os.environ.get(PASSWORD_VARIABLE) or getpass.getpass("admin password: ")
    try:
        answer = push(args.device, args.url, password, args.force)
    except PushError as error:
        sys.stderr.write("meterkit: %s\n" % error)
        return 1
    print(json.dumps(answer))
    return 0
