"""The ASGI app of one scoring-server worker: each request goes to the version served when it
arrived (pipelines/serving/follower.py follows the registry), and its response names that
version (`X-Model-Version`).

- `/invocations`: MLflow's own scoring app for the version (`mlflow.pyfunc.scoring_server.init`):
  its request formats, its 400 naming the field of a bad request and the served model's
  small-request fast path (served_model/model.py) are unchanged. The request passes the server's
  door first (pipelines/serving/boundary.py): its body bounded in bytes and rows, text no store
  keeps and non-finite numbers refused naming the field, error answers without stack traces or
  echoed input. Feature-row requests name no flight: the champion answers them all.
- `/predict`: one flight named by what a caller knows, its features computed here
  (pipelines/serving/by_flight.py). While a challenger is in promotion mode `canary`, the flights
  whose key hashes below FLIGHTS_CANARY_SHARE are answered by it (one flight, one version).
- `/serving`: the followers, the recorder and the by-flight desk.
- Served requests go to the warehouse through `ServedTrafficRecorder` (off the request path).
"""

from __future__ import annotations

import json
import os
import time

from pipelines.serving.follower import ChampionFollower, Served

PREDICT_MAX_BYTES = 16 << 10  # one flight's fields
EXAMPLE_FLIGHT = ('{"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", '
                  '"scheduled_departure": "2013-01-01T05:15"}')


class FollowingApp:
    """The ASGI app of one worker: each request goes to the app of the version served when it arrived, and its
    response carries `X-Model-Version`; /invocations passes the door first (boundary.py); `/serving`
    reports the follower and the recorder."""

    def __init__(self, follower: ChampionFollower, recorder=None, max_body_bytes: int = 16 << 20,
                 max_rows: int = 10_000, flights=None, canary: ChampionFollower | None = None):
        self.follower, self.recorder, self.flights = follower, recorder, flights  # flights: by_flight.FlightDesk (/predict)
        self.canary = canary  # follower.CanaryFollower: the challenger in mode canary, when there is one
        self.max_body_bytes, self.max_rows = max_body_bytes, max_rows
        self.worker = str(os.getpid()).encode()  # X-Serving-Worker: which worker process answered

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.recorder is not None:
                    self.recorder.start()
                if self.flights is not None:
                    self.flights.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.follower.stop()
                if self.canary is not None:
                    self.canary.stop()
                if self.recorder is not None:
                    self.recorder.stop()
                if self.flights is not None:
                    self.flights.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, send, status: int, body: bytes, headers: list) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        from pipelines.serving import boundary

        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return None
        served = self.follower.served()
        named = [(b"x-model-version", served.version.encode()), (b"x-serving-worker", self.worker)]
        if scope["path"] == "/serving":
            body = json.dumps({**self.follower.status(),
                               "canary": self.canary.status() if self.canary else "off",
                               "recording": self.recorder.status() if self.recorder else "off",
                               "by_flight": self.flights.status() if self.flights else "off"}).encode()
            return await self._answer(send, 200, body, named)
        if scope["path"] == "/predict" and scope["method"] == "POST" and self.flights is not None:
            return await self._predict(scope, receive, send, served, named)
        if scope["path"] != "/invocations" or scope["method"] != "POST":
            return await served.app(scope, receive, self._named(send, named))
        try:
            body = await boundary.read_body(scope, receive, self.max_body_bytes)
            rows = boundary.parse(scope, body, self.max_rows)
        except boundary.Refused as refused:
            return await self._answer(send, refused.status, boundary.error_body(refused.code, refused.message), named)
        except boundary.Disconnected:
            return None
        sent = False

        async def again():  # the body read above, then whatever the client does next
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status, start, answer = [0], [None], []

        async def send_checked(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if status[0] >= 400:  # held: the answer is rewritten (no trace, no input)
                    start[0] = message
                    return
                message = {**message, "headers": [*message.get("headers", []), *named]}
            elif message["type"] == "http.response.body":
                if status[0] >= 400 or self.recorder is not None:
                    answer.append(message.get("body", b""))
                if status[0] >= 400:
                    if not message.get("more_body", False):
                        clean = boundary.scrubbed(b"".join(answer), rows, served.row_type)
                        await self._answer(send, status[0], clean, named)
                    return
            await send(message)

        await served.app(scope, again, send_checked)
        if self.recorder is not None and status[0] == 200:
            self.recorder.offer(served.version, body, b"".join(answer), time.time())
        return None

    async def _predict(self, scope, receive, send, served: Served, named: list) -> None:
        """One flight named by what a caller knows: its features computed here (by_flight.py)."""
        from pipelines.serving import boundary
        from pipelines.serving.by_flight import BadFlight, DayUnavailable

        try:
            body = await boundary.read_body(scope, receive, PREDICT_MAX_BYTES)
            request = boundary.json_body(scope, body, EXAMPLE_FLIGHT)
            answer = self.flights.answer(request, served, self.canary.served() if self.canary else None)
        except boundary.Refused as refused:
            return await self._answer(send, refused.status, boundary.error_body(refused.code, refused.message), named)
        except boundary.Disconnected:
            return None
        except BadFlight as bad:
            return await self._answer(send, 400, boundary.error_body("BAD_REQUEST", str(bad)), named)
        except DayUnavailable as unavailable:
            return await self._answer(send, 503, boundary.error_body("TEMPORARILY_UNAVAILABLE", str(unavailable)), named)
        said = json.dumps(answer).encode()
        version = answer["model_version"]  # the champion's, or the canary's
        await self._answer(send, 200, said, [(b"x-model-version", version.encode()), *named[1:]])
        if self.recorder is not None:  # the answer names the flight and holds its features
            self.recorder.offer_answer(version, said, time.time())
        return None

    @staticmethod
    def _named(send, named: list):
        async def send_named(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *named]}
            await send(message)
        return send_named
