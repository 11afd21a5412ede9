"""Turn request bodies into model inputs, or a 4xx `RequestError` saying what was wrong."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import torch

from optbench.artifact import Manifest

IMAGE_TYPES = ("image/png", "image/jpeg")


class RequestError(Exception):
    """A client error: HTTP `status` and a message that names the problem and the fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def parse_json(body: bytes, manifest: Manifest, max_items: int) -> tuple[np.ndarray, dict]:
    """{"inputs": one item or a list of items, each of shape input_shape; optional "labels"
    (ints, one per item) and "key" (str, for sticky A/B routing)} -> ((n, *shape) array, extras)
    """
    if not body.strip():
        raise RequestError(400, "empty body; send JSON {\"inputs\": [...]} or an image")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"body is not valid JSON ({exc.__class__.__name__}: {exc})"
                           ) from None
    except RecursionError:
        raise RequestError(400, "body nests JSON too deeply; send a flat list of items") from None
    if not isinstance(data, dict) or "inputs" not in data:
        raise RequestError(422, "JSON body must be an object with an \"inputs\" field holding "
                           f"one item of shape {list(manifest.input_shape)} or a list of them")
    extra = set(data) - {"inputs", "labels", "key"}
    if extra:
        raise RequestError(422, f"unknown fields {sorted(extra)}; allowed: inputs, labels, key")
    array = _as_array(data["inputs"], manifest)
    if array.shape == manifest.input_shape:
        array = array[None]
    if array.shape[1:] != manifest.input_shape or len(array) == 0:
        raise RequestError(422, f"inputs have shape {list(array.shape)}; model "
                           f"{manifest.name!r} takes items of shape {list(manifest.input_shape)}"
                           f" (a batch is [N, {', '.join(map(str, manifest.input_shape))}])")
    if len(array) > max_items:
        raise RequestError(413, f"{len(array)} items in one request; the limit is {max_items}. "
                           "Split the batch")
    if not np.isfinite(array).all():
        raise RequestError(422, "inputs contain NaN or infinity; send finite numbers")
    return array, {"labels": _labels(data.get("labels"), len(array), manifest),
                   "key": _key(data.get("key"))}


def _as_array(inputs, manifest: Manifest) -> np.ndarray:
    if not isinstance(inputs, list):
        raise RequestError(422, f"\"inputs\" must be a (nested) list of numbers, got "
                           f"{type(inputs).__name__}")
    try:
        array = np.asarray(inputs, dtype=np.float64)
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise RequestError(422, "\"inputs\" must be a rectangular nested list of numbers "
                           f"(items of shape {list(manifest.input_shape)}); got ragged lists "
                           "or non-numbers") from None
    with np.errstate(over="ignore"):
        return array.astype(np.dtype(manifest.input_dtype))


def _labels(labels, n: int, manifest: Manifest) -> list[int] | None:
    if labels is None:
        return None
    k = len(manifest.class_names) or None
    if (not isinstance(labels, list) or len(labels) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels)
            or (k and not all(0 <= v < k for v in labels))):
        raise RequestError(422, f"\"labels\" must be a list of {n} class indices"
                           + (f" in [0, {k})" if k else ""))
    return labels


def _key(key) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 0 < len(key) <= 256:
        raise RequestError(422, "\"key\" must be a string of 1 to 256 characters")
    return key


def parse_image(body: bytes, manifest: Manifest, max_pixels: int, preprocess) -> np.ndarray:
    """PNG/JPEG bytes -> (1, *input_shape), converted as the manifest's transform says (grey or
    colour, resized to its size, normalized with its mean/std)."""
    from PIL import Image, UnidentifiedImageError

    if not body:
        raise RequestError(400, "empty body; upload a PNG or JPEG image")
    if manifest.transform is None:
        raise RequestError(415, f"model {manifest.name!r} takes tensors, not images; send JSON "
                           "{\"inputs\": [...]}")
    try:
        with Image.open(io.BytesIO(body)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise RequestError(415, f"image format {img.format} is not accepted; send PNG "
                                   "or JPEG")
            if img.width * img.height > max_pixels:
                raise RequestError(413, f"image is {img.width}x{img.height} pixels; the limit "
                                   f"is {max_pixels} pixels (about {int(math.sqrt(max_pixels))}"
                                   " square)")
            colour = bool(manifest.transform.get("rgb"))   # as the model was trained
            pixels = np.asarray(img.convert("RGB" if colour else "L"), dtype=np.uint8)
    except RequestError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise RequestError(415, f"body is not a readable PNG or JPEG image ({exc})") from None
    x = preprocess(torch.from_numpy(pixels.copy())[None]).numpy()
    return x.astype(np.dtype(manifest.input_dtype), copy=False)
