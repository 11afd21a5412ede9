"""The FastAPI app factory. Everything the app holds lives on `app.state`; nothing is global.

    app = create_app(ServeSettings(manifests=("artifacts/mnv2-int8/manifest.json",)))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from optbench.monitor.metrics import CONTENT_TYPE, ServeMetrics
from optbench.serve import v2
from optbench.serve.ab import ABRouter
from optbench.serve.inputs import IMAGE_TYPES, RequestError, parse_image, parse_json
from optbench.serve.registry import ServedModel, check_manifests, load_models, model_warnings
from optbench.serve.settings import ServeSettings
from optbench.serve.stalls import StallProbes, settle_gc

_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["inputs"], "additionalProperties": False,
        "properties": {
            "inputs": {"type": "array", "description": "one item of the model's input shape, "
                       "or a list of them (a batch)"},
            "labels": {"type": "array", "items": {"type": "integer"},
                       "description": "true classes, recorded for A/B statistics"},
            "key": {"type": "string", "description": "sticky A/B assignment key"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}}}}}}}


_V2_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": {
                "type": "object", "required": ["name", "shape", "datatype"],
                "properties": {"name": {"type": "string"},
                               "shape": {"type": "array", "items": {"type": "integer"}},
                               "datatype": {"type": "string"},
                               "parameters": {"type": "object"},
                               "data": {"type": "array"}}}},
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"},
                               "parameters": {"type": "object"}}}}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def create_app(settings: ServeSettings) -> FastAPI:
    """Build the app. Manifests are checked now (a bad checksum fails here); models load and
    warm up in the lifespan, and /readyz turns 200 once they have."""
    manifests = check_manifests(settings)
    metrics = ServeMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        executors = {"inference": ThreadPoolExecutor(1, thread_name_prefix="optbench-infer"),
                     "naive": ThreadPoolExecutor(64, thread_name_prefix="optbench-naive")}
        app.state.models = await asyncio.get_running_loop().run_in_executor(
            executors["inference"], load_models, settings, metrics, executors)
        for model in app.state.models.values():
            model.batcher.start()
        settle_gc(settings.gc)
        probes = StallProbes(metrics)
        probes.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await probes.stop()
            for model in app.state.models.values():
                await model.batcher.stop()
            for router in app.state.ab.values():
                router.close()
            for ex in executors.values():
                ex.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="optbench server", version="1", lifespan=lifespan)
    app.state.settings, app.state.metrics, app.state.manifests = settings, metrics, manifests
    app.state.models, app.state.ready = {}, False
    app.state.ab = {r.name: ABRouter(r, seed=settings.seed, log_path=settings.ab_log)
                    for r in settings.ab_routes}
    _install_error_handlers(app)
    app.add_middleware(_V2InferFastPath, state=app.state)
    # added last, so outermost: it also counts the fast path's requests
    app.add_middleware(_MetricsMiddleware, metrics=metrics, models=manifests)
    _add_routes(app)
    _add_v2_routes(app)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (and its worker processes): settings from the env."""
    return create_app(ServeSettings.from_env())


def _error(status: int, message: str) -> Response:
    content, headers = _error_body(status, message)
    return Response(content, status_code=status, headers=headers)


def _error_body(status: int, message: str) -> tuple[bytes, dict[str, str]]:
    """Every error's body: {"error": message, "status": status}."""
    return (json.dumps({"error": message, "status": status}, separators=(",", ":")).encode(),
            {"content-type": "application/json"})


def _internal(exc: Exception) -> str:
    return f"internal error ({type(exc).__name__}); the server log has the traceback"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug, not bad input
        return _error(500, _internal(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _error(422, "invalid request: " + "; ".join(parts))


class _MetricsMiddleware:
    """Pure ASGI middleware (cheaper than @app.middleware): counts and times every request by
    route template and model, and tracks requests in flight. The model label is a loaded
    model's name or "", never a name a client made up (unbounded label values would grow the
    registry without limit); each label set's series are looked up once, then cached."""

    def __init__(self, app, metrics: ServeMetrics, models):
        self.app, self.metrics, self.models = app, metrics, models
        self._series: dict[tuple[str, str, int], tuple] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            model = scope.get("path_params", {}).get("name", "") if route else ""
            key = (model if model in self.models else "", endpoint, status[0])
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    self.metrics.requests.labels(model=key[0], endpoint=endpoint,
                                                 status=str(status[0])),
                    self.metrics.latency.labels(model=key[0], endpoint=endpoint))
            series[0].inc()
            series[1].observe(time.perf_counter() - start)


def _add_routes(app: FastAPI) -> None:
    state = app.state

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if not state.ready:
            return _error(503, "models are still loading and warming up")
        return {"status": "ready", "models": sorted(state.models)}

    @app.get("/metrics")
    async def metrics():
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def list_models():
        return {"models": [_model_summary(m) for m in state.manifests.values()]}

    @app.get("/v1/models/{name}")
    async def get_model(name: str):
        return {**_model_summary(_manifest(state, name)),
                "manifest": _manifest(state, name).to_dict()}

    @app.post("/v1/models/{name}/predict", openapi_extra=_PREDICT_BODY)
    async def predict(name: str, request: Request):
        model = _served(state, name)
        with model.batcher.arriving():
            x, extras = await _read_inputs(request, model, state.settings)
        return _answer(model, await _infer(model, x, state))

    @app.get("/v1/ab")
    async def list_ab():
        return {"routes": [r.summary() for r in state.ab.values()]}

    @app.get("/v1/ab/{route}")
    async def get_ab(route: str):
        return _router(state, route).summary()

    @app.post("/v1/ab/{route}/predict", openapi_extra=_PREDICT_BODY)
    async def predict_ab(route: str, request: Request):
        router = _router(state, route)
        start = time.perf_counter()
        model_a = _served(state, router.route.a)  # both arms take the same input (checked)
        x, extras = await _read_inputs(request, model_a, state.settings)
        key = extras.get("key") or request.headers.get("x-ab-key") or None
        arm = router.assign(key)
        model = _served(state, router.model_of(arm))
        pred = await _infer(model, x, state)
        state.metrics.ab_requests.labels(route=route, arm=arm, model=model.name).inc()
        router.record(arm, key, time.perf_counter() - start, 200, pred.indices.tolist(),
                      extras.get("labels"))
        return {**_answer(model, pred), "route": route, "arm": arm}


def _add_v2_routes(app: FastAPI) -> None:
    """The Open Inference Protocol (KServe v2) beside /v1: Triton/KServe clients work as they
    are (optbench.serve.v2 has the wire format)."""
    state = app.state

    @app.get("/v2")
    async def v2_server():
        from optbench import __version__

        return {"name": "optbench", "version": __version__,
                "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def v2_live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def v2_ready():
        if not state.ready:
            return _error(503, "models are still loading and warming up")
        return {"ready": True}

    @app.get("/v2/models/{name}")
    async def v2_metadata(name: str):
        m = _manifest(state, name)
        return v2.model_metadata(m, platform=f"optbench_{m.format}")

    @app.get("/v2/models/{name}/ready")
    async def v2_model_ready(name: str):
        _served(state, name)
        return {"name": name, "ready": True}

    async def infer(name: str, request: Request, version: str | None = None):
        async def body(limit: int) -> bytes:   # the declared length is checked by _v2_infer
            return await _collect(request.stream(), limit)

        content, headers = await _v2_infer(state, name, version, body, request.headers)
        return Response(content, headers=headers)

    @app.post("/v2/models/{name}/infer", openapi_extra=_V2_BODY)
    async def v2_infer(name: str, request: Request):
        return await infer(name, request)

    @app.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=_V2_BODY)
    async def v2_infer_version(name: str, version: str, request: Request):
        return await infer(name, request, version)


async def _v2_infer(state, name: str, version: str | None,
                    read_body: Callable[[int], Awaitable[bytes]],
                    headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """One v2 inference, shared by the FastAPI route and the fast path: (body, headers)."""
    model = _served(state, name)
    if version is not None and version != str(model.manifest.version):
        raise RequestError(404, f"model {name!r} has version {model.manifest.version!r}, "
                           f"not {version!r}")
    with model.batcher.arriving():
        limit = state.settings.max_upload_bytes
        _check_declared(headers, limit)
        body = await read_body(limit)
        x, meta = v2.parse_request(body, headers.get(v2.HEADER_LENGTH), model.manifest,
                                   state.settings.max_items)
    pred = await _infer(model, x, state)
    return v2.encode_response(name, model.manifest.version,
                              {"logits": pred.logits, "probabilities": pred.probs}, meta)


class _V2InferFastPath:
    """Pure ASGI in front of FastAPI for the hot endpoint, `POST /v2/models/{name}/infer`
    (and its `versions/{version}` form): the same `_v2_infer` the FastAPI routes call, without
    Starlette's route matching, FastAPI's dependency solving and the Request/Response objects,
    which together cost several times a small int8 model's inference per request. Errors get
    the same JSON body as the app's handlers; everything else passes through to FastAPI.
    `_MetricsMiddleware` sits outside and counts these requests under the route's template."""

    _PATH = re.compile(r"/v2/models/([^/]+)/(?:versions/([^/]+)/)?infer")
    _ROUTES = {False: SimpleNamespace(path="/v2/models/{name}/infer"),
               True: SimpleNamespace(path="/v2/models/{name}/versions/{version}/infer")}

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        match = None
        if scope["type"] == "http" and scope["method"] == "POST":
            path, root = scope["path"], scope.get("root_path", "")
            match = self._PATH.fullmatch(path[len(root):] if path.startswith(root) else path)
        if match is None:
            return await self.app(scope, receive, send)
        name, version = match.groups()
        scope["route"] = self._ROUTES[version is not None]
        scope["path_params"] = {"name": name, **({"version": version} if version else {})}
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def chunks():
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                more = message.get("more_body", False)
                yield message.get("body", b"")

        async def read_body(limit: int) -> bytes:
            return await _collect(chunks(), limit)

        try:
            content, extra = await _v2_infer(self.state, name, version, read_body, headers)
            status = 200
        except _ClientGone:
            return
        except RequestError as exc:
            status, content, extra = exc.status, *_error_body(exc.status, exc.message)
        except Exception as exc:  # a bug, not bad input: logged like the app's handler does
            logging.getLogger("optbench.serve").exception("POST %s failed", scope["path"])
            status, content, extra = 500, *_error_body(500, _internal(exc))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-length", str(len(content)).encode()),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": content})


class _ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody to answer."""


def _model_summary(m) -> dict:
    return {"name": m.name, "version": m.version, "format": m.format,
            "input_shape": list(m.input_shape), "classes": list(m.class_names),
            "metrics": m.metrics, "int8": m.int8, "warnings": model_warnings(m)}


def _manifest(state, name: str):
    if name not in state.manifests:
        raise RequestError(404, f"unknown model {name!r}; loaded models are "
                           f"{sorted(state.manifests)}")
    return state.manifests[name]


def _served(state, name: str) -> ServedModel:
    _manifest(state, name)
    if not state.ready or name not in state.models:
        raise RequestError(503, "models are still loading and warming up; retry shortly")
    return state.models[name]


def _router(state, route: str) -> ABRouter:
    if route not in state.ab:
        raise RequestError(404, f"unknown A/B route {route!r}; routes are {sorted(state.ab)}")
    return state.ab[route]


async def _read_inputs(request: Request, model: ServedModel, settings: ServeSettings):
    body = await _read_body(request, settings.max_upload_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    m = model.manifest
    if ctype == "application/json" or ctype.endswith("+json"):
        return parse_json(body, m, settings.max_items)
    if ctype in IMAGE_TYPES or ctype == "application/octet-stream":
        return parse_image(body, m, settings.max_image_pixels,
                           model.artifact.preprocess_images), {}
    if ctype == "multipart/form-data":
        return await _read_multipart(request, model, settings), {}
    raise RequestError(415, f"unsupported content type {ctype or '(none)'!r}; send "
                       "application/json {\"inputs\": [...]}, image/png, image/jpeg, or "
                       "multipart/form-data with a 'file' field")


def _check_declared(headers: Mapping[str, str], limit: int) -> None:
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")


async def _collect(chunks, limit: int) -> bytes:
    """A body from its chunks, refused (413) once it passes `limit` bytes."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _read_body(request: Request, limit: int) -> bytes:
    _check_declared(request.headers, limit)
    body = await _collect(request.stream(), limit)
    request._body = body  # lets request.form() parse what was already read
    return body


async def _read_multipart(request: Request, model: ServedModel, settings: ServeSettings):
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception as exc:  # malformed multipart: the parser's own words
        raise RequestError(400, f"malformed multipart body ({exc})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise RequestError(422, "multipart body needs a 'file' field holding the image")
    return parse_image(await upload.read(), model.manifest, settings.max_image_pixels,
                       model.artifact.preprocess_images)


class _Prediction(NamedTuple):
    probs: np.ndarray
    indices: np.ndarray
    names: list[str]
    logits: np.ndarray


async def _infer(model: ServedModel, x: np.ndarray, state) -> _Prediction:
    try:
        out = await asyncio.wait_for(model.batcher.submit(x), state.settings.request_timeout_s)
    except TimeoutError:
        raise RequestError(503, f"inference did not finish within "
                           f"{state.settings.request_timeout_s} s; the server is overloaded, "
                           "retry later") from None
    names = model.manifest.class_names
    pred = _Prediction(out.probs, out.indices,
                       [names[i] if i < len(names) else str(i) for i in out.indices.tolist()],
                       out.logits)
    if model.drift is not None:
        window = model.drift.add(x, out.probs)
        if window is not None:  # the statistics run off the event loop
            report = await asyncio.get_running_loop().run_in_executor(
                None, model.drift.check, window)
            state.metrics.record_drift(model.name, report)
    return pred


def _answer(model: ServedModel, pred: _Prediction) -> dict:
    return {"model": model.name, "version": model.manifest.version, "predictions": [
        {"class_index": int(i), "class_name": n, "probability": float(p[i]),
         "probabilities": [round(float(v), 6) for v in p]}
        for i, n, p in zip(pred.indices, pred.names, pred.probs, strict=True)]}
