"""Errors that speak to the user: what happened, the value received, and the fix."""


class OptbenchError(Exception):
    """Base class of every error optbench raises on purpose."""


class ConfigError(OptbenchError, ValueError):
    """A configuration value is invalid; the message names the field and the allowed values."""


class MissingInputError(OptbenchError, FileNotFoundError):
    """A file, dataset or weight that is needed cannot be found; the message says how to get it."""


class RuntimeUnavailableError(OptbenchError, RuntimeError):
    """A runtime (onnxruntime, CUDA, ...) is not installed or not usable on this machine."""


class MeasurementError(OptbenchError, RuntimeError):
    """A measurement could not be made (e.g. the callable failed or the clock went backwards)."""


class UnsupportedModelError(OptbenchError, ValueError):
    """A method cannot handle a construct of this model; the message names it and the
    alternatives."""
