"""A/B routing: split traffic between two models by weight, sticky by request key.

Without a key, each request draws its arm from a seeded generator. With a key, the arm is a
pure function of (route, key), so one user always sees the same model, across restarts and
workers. Every routed request is recorded (memory, and a JSON-lines log when configured), the
input of `optbench abtest`.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import threading
import time
from pathlib import Path

from optbench.serve.settings import ABRoute


class ABRouter:
    def __init__(self, route: ABRoute, seed: int = 0, log_path: str = "",
                 keep: int = 100_000):
        self.route = route
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.records: collections.deque = collections.deque(maxlen=keep)
        self.log_path = Path(log_path) if log_path else None
        # opened once, line-buffered: each record is one whole line, appended as it happens
        self._log = (open(self.log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
                     if log_path else None)  # closed by close(), from the app lifespan

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def assign(self, key: str | None = None) -> str:
        """'a' or 'b'."""
        if key is None:
            with self._lock:
                u = self._rng.random()
        else:
            digest = hashlib.sha256(f"{self.route.name}\0{key}".encode()).digest()
            u = int.from_bytes(digest[:8], "big") / 2.0 ** 64
        return "b" if u < self.route.weight_b else "a"

    def model_of(self, arm: str) -> str:
        return self.route.b if arm == "b" else self.route.a

    def record(self, arm: str, key: str | None, latency_s: float, status: int,
               predictions: list[int], labels: list[int] | None = None) -> dict:
        rec = {"ts": time.time(), "route": self.route.name, "arm": arm,
               "model": self.model_of(arm), "key": key, "latency_s": latency_s,
               "status": status, "predictions": predictions}
        if labels is not None:
            rec["labels"] = labels
        with self._lock:
            self.records.append(rec)
            if self._log is not None:
                self._log.write(json.dumps(rec) + "\n")
        return rec

    def summary(self) -> dict:
        with self._lock:
            recs = list(self.records)
        counts = collections.Counter(r["arm"] for r in recs)
        return {"route": self.route.to_dict(), "requests": {"a": counts.get("a", 0),
                                                            "b": counts.get("b", 0)}}
