"""Server settings: a frozen config built from arguments or the environment, never a global."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

from optbench.config import Config, check_choice, check_positive
from optbench.errors import ConfigError

ENV_VAR = "OPTBENCH_SERVE_SETTINGS"  # JSON of ServeSettings fields (how workers get them)


@dataclasses.dataclass(frozen=True)
class ABRoute(Config):
    """`POST /v1/ab/{name}/predict` sends a share `weight_b` of traffic to model `b`."""

    name: str
    a: str
    b: str
    weight_b: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.weight_b <= 1.0:
            raise ConfigError(f"ABRoute {self.name!r}: weight_b must lie in [0, 1], got "
                              f"{self.weight_b}")

    @classmethod
    def parse(cls, text: str) -> ABRoute:
        """'NAME=A:B[:WEIGHT_B]', as the CLI's --ab takes it."""
        name, sep, rest = text.partition("=")
        parts = rest.split(":")
        if not sep or not name or len(parts) not in (2, 3) or not all(parts[:2]):
            raise ConfigError(f"--ab {text!r}: expected NAME=MODEL_A:MODEL_B[:WEIGHT_B], e.g. "
                              "mnv2=fp32:int8:0.2")
        try:
            weight = float(parts[2]) if len(parts) == 3 else 0.5
        except ValueError:
            raise ConfigError(f"--ab {text!r}: WEIGHT_B must be a number in [0, 1]") from None
        return cls(name, parts[0], parts[1], weight)


@dataclasses.dataclass(frozen=True)
class ServeSettings(Config):
    manifests: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    batching: bool = True          # False: one request = one forward pass (the naive design)
    max_batch: int = 32            # items per forward pass, at most
    max_wait_ms: float = 2.0       # how long the first queued request waits for company
    max_items: int = 64            # items in one request's JSON batch, at most
    max_upload_bytes: int = 4 << 20
    max_image_pixels: int = 4096 * 4096
    request_timeout_s: float = 10.0
    threads: int = 0               # runtime intra-op threads (0 = runtime default)
    ab_routes: tuple[ABRoute, ...] = ()
    ab_log: str = ""               # JSON-lines file of A/B records ("" = memory only)
    drift_window: int = 0          # live items per drift check (0 = no drift monitoring)
    seed: int = 0
    # freeze (serve.stalls.settle_gc): a full collection walked every object of the loaded
    # models and libraries, stopping the process for ~120-145 ms (benchmarks/serving_stalls.py,
    # results/serving/stalls); python: CPython's collector as it is
    gc: str = "freeze"
    loop: str = "auto"             # uvicorn event loop: auto (uvloop when installed) | asyncio
    http: str = "auto"             # uvicorn HTTP parser: auto (httptools when installed) | h11

    def __post_init__(self):
        check_choice("ServeSettings", "gc", self.gc, ("python", "freeze"))
        check_choice("ServeSettings", "loop", self.loop, ("auto", "asyncio", "uvloop"))
        check_choice("ServeSettings", "http", self.http, ("auto", "h11", "httptools"))
        check_positive("ServeSettings", port=self.port, workers=self.workers,
                       max_batch=self.max_batch, max_items=self.max_items,
                       max_upload_bytes=self.max_upload_bytes,
                       max_image_pixels=self.max_image_pixels,
                       request_timeout_s=self.request_timeout_s)
        if self.max_wait_ms < 0 or self.threads < 0 or self.drift_window < 0:
            raise ConfigError("ServeSettings: max_wait_ms, threads and drift_window must be >= 0")

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        environ = os.environ if environ is None else environ
        raw = environ.get(ENV_VAR)
        if not raw:
            raise ConfigError(f"{ENV_VAR} is not set; start the server with `optbench serve "
                              "MANIFEST...`, or set it to the JSON of ServeSettings")
        try:
            return cls.from_dict(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{ENV_VAR} is not valid JSON: {exc}") from None
