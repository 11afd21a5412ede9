"""The Open Inference Protocol (KServe v2, as Triton speaks it) over HTTP: JSON tensors and the
binary tensor data extension. Pure functions from bytes to arrays and back; app.py routes them.

A request is a JSON header, optionally followed by raw little-endian tensor bytes; the
`Inference-Header-Content-Length` header says where the JSON ends:

    {"id": "7", "inputs": [{"name": "input", "shape": [2, 1, 32, 32], "datatype": "FP32",
                            "parameters": {"binary_data_size": 8192}}],
     "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}]}<8192 bytes>

Every model takes one input, `input` (FP32, [-1, *input_shape]), and has two outputs:
`logits` (FP32, [-1, classes]) and `probabilities` (FP32, the softmax). Outputs come back as JSON
`data` unless the request asks for binary (an output's `binary_data` or the request's
`binary_data_output` parameter), as `tritonclient` does by default.
"""

from __future__ import annotations

import json
import math

import numpy as np

from optbench.serve.inputs import RequestError

INPUT = "input"
OUTPUTS = ("logits", "probabilities")
HEADER_LENGTH = "inference-header-content-length"
_DTYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64,
           "INT32": np.int32, "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8,
           "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64}


def model_metadata(manifest, platform: str) -> dict:
    """GET /v2/models/{name}: the tensors a client must send and will get."""
    return {"name": manifest.name, "versions": [str(manifest.version)], "platform": platform,
            "inputs": [{"name": INPUT, "datatype": "FP32",
                        "shape": [-1, *manifest.input_shape]}],
            "outputs": [{"name": name, "datatype": "FP32",
                         "shape": [-1, len(manifest.class_names)]} for name in OUTPUTS]}


def parse_request(body: bytes, header_length: str | None, manifest,
                  max_items: int) -> tuple[np.ndarray, dict]:
    """The request -> ((n, *input_shape) float32 array, {"id", "outputs": {name: binary}})."""
    header, tail = _split(body, header_length)
    try:
        request = json.loads(header)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError(400, f"the inference request header is not valid JSON ({exc}); "
                           "send {\"inputs\": [{\"name\": \"input\", ...}]}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise RequestError(400, "an inference request is a JSON object with an \"inputs\" list")
    inputs = request["inputs"]
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError(400, f"model {manifest.name!r} takes exactly one input tensor, "
                           f"{INPUT!r}; got {len(inputs)}")
    x = _tensor(inputs[0], tail, manifest, max_items)
    return x, {"id": request.get("id"), "outputs": _wanted(request)}


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if not body:
        raise RequestError(400, "empty body; send a v2 inference request (JSON, optionally "
                           "followed by binary tensor data)")
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise RequestError(400, f"Inference-Header-Content-Length {header_length!r} is not a "
                           f"byte count within the {len(body)}-byte body")
    n = int(header_length)
    return body[:n], body[n:]


def _params(obj: dict, where: str) -> dict:
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise RequestError(400, f"{where} \"parameters\" must be a JSON object")
    return params


def _tensor(spec: dict, tail: bytes, manifest, max_items: int) -> np.ndarray:
    name, shape, dtype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    if not isinstance(dtype, str):
        raise RequestError(400, "the input needs \"datatype\": \"FP32\"")
    if name != INPUT:
        raise RequestError(400, f"unknown input {name!r}; model {manifest.name!r} takes "
                           f"{INPUT!r} (GET /v2/models/{manifest.name} lists it)")
    if dtype not in _DTYPES:
        raise RequestError(400, f"datatype {dtype!r} is not supported; send FP32 "
                           f"(or one of {sorted(_DTYPES)})")
    want = [*manifest.input_shape]
    if (not isinstance(shape, list) or len(shape) != len(want) + 1
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
            or shape[1:] != want or shape[0] < 1):
        raise RequestError(400, f"input shape {shape!r} does not fit model {manifest.name!r}: "
                           f"send [N, {', '.join(map(str, want))}] with N >= 1")
    if shape[0] > max_items:
        raise RequestError(413, f"{shape[0]} items in one request; the limit is {max_items}. "
                           "Split the batch")
    count = math.prod(shape)
    size = _params(spec, "the input's").get("binary_data_size")
    if size is not None:
        if dtype != "FP32":
            raise RequestError(400, f"binary input data must be FP32 for this model, got {dtype}")
        if (not isinstance(size, int) or isinstance(size, bool) or size != count * 4
                or len(tail) != size):
            raise RequestError(400, f"binary_data_size {size!r} does not match the data: "
                               f"shape {shape} in FP32 is {count * 4} bytes and "
                               f"{len(tail)} bytes follow the JSON header")
        array = np.frombuffer(tail, dtype="<f4").reshape(shape)   # a view: copied per batch
    else:
        if tail:
            raise RequestError(400, f"{len(tail)} bytes follow the JSON header but no input "
                               "declares binary_data_size")
        array = _json_data(spec.get("data"), dtype, count).reshape(shape)
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise RequestError(400, "input contains NaN or infinity; send finite numbers")
    return array


def _json_data(data, dtype: str, count: int) -> np.ndarray:
    if not isinstance(data, list):
        raise RequestError(400, "the input needs \"data\" (a flat or nested list of numbers) "
                           "or binary data (parameters.binary_data_size)")
    try:
        array = np.asarray(data, dtype=np.float64).ravel()
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise RequestError(400, "input \"data\" must be numbers (a flat list in row-major "
                           "order, or nested lists)") from None
    if array.size != count:
        raise RequestError(400, f"input \"data\" holds {array.size} numbers; its shape needs "
                           f"{count}")
    return array.astype(_DTYPES[dtype]) if dtype != "FP32" else array


def _wanted(request: dict) -> dict[str, bool]:
    """Output name -> binary? All outputs when none is named."""
    default_binary = bool(_params(request, "the request's").get("binary_data_output", False))
    outputs = request.get("outputs")
    if outputs is None:
        return {name: default_binary for name in OUTPUTS}
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise RequestError(400, "\"outputs\" must be a list of {\"name\": ...} objects")
    wanted = {}
    for o in outputs:
        if not isinstance(o.get("name"), str) or o["name"] not in OUTPUTS:
            raise RequestError(400, f"unknown output {o.get('name')!r}; outputs are "
                               f"{list(OUTPUTS)}")
        wanted[o["name"]] = bool(_params(o, "an output's").get("binary_data", default_binary))
    return wanted


def encode_response(model_name: str, version: str, tensors: dict[str, np.ndarray],
                    meta: dict) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers: JSON, then binary outputs in order."""
    outputs, blobs = [], []
    for name, binary in meta["outputs"].items():
        t = np.ascontiguousarray(tensors[name], dtype="<f4")
        out = {"name": name, "datatype": "FP32", "shape": list(t.shape)}
        if binary:
            raw = t.tobytes()
            out["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            out["data"] = [float(v) for v in t.ravel()]
        outputs.append(out)
    response = {"model_name": model_name, "model_version": str(version), "outputs": outputs}
    if meta.get("id") is not None:
        response["id"] = meta["id"]
    header = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {"content-type": "application/octet-stream",
                                      "inference-header-content-length": str(len(header))}
