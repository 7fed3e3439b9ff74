# The Flask seed: GET returns a Snowflake id as a string (41-bit milliseconds since an
# epoch, 10-bit node id, 12-bit sequence), as the service hailstone was built from did.
# Run under gunicorn with one worker by bench/http.ts.
import threading
import time

from flask import Flask

EPOCH_MS = 1735689600000  # 2025-01-01T00:00:00Z
NODE_ID = 1

app = Flask(__name__)
_lock = threading.Lock()
_last_ms = -1
_sequence = 0


def next_id():
    global _last_ms, _sequence
    with _lock:
        now = int(time.time() * 1000)
        if now < _last_ms:
            now = _last_ms
        if now == _last_ms:
            _sequence = (_sequence + 1) & 0xFFF
            if _sequence == 0:
                while now <= _last_ms:
                    now = int(time.time() * 1000)
        else:
            _sequence = 0
        _last_ms = now
        return ((now - EPOCH_MS) << 22) | (NODE_ID << 12) | _sequence


@app.route("/")
def snowflake():
    return str(next_id())
