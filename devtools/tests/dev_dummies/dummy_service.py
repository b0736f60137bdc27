"""A stand-in service for `lobe dev` tests: answers 200 on every path; DUMMY_DIE=<name> makes it crash."""

import http.server
import os
import sys
import threading
import time

name = os.environ["OTEL_SERVICE_NAME"]
port = int(os.environ.get("GATEWAY_PORT") if name == "gateway" else os.environ["OPS_PORT"])


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Ok)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"{name} serving on {port} with NATS_URL={os.environ['NATS_URL']}", flush=True)
if os.environ.get("DUMMY_DIE") == name:
    time.sleep(float(os.environ.get("DUMMY_DIE_AFTER", "1")))
    print(f"{name} dying", flush=True)
    sys.exit(3)
time.sleep(3600)
