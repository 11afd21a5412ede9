"""Your images from an .npz file: splits, class names, normalization from the training split,
a pipeline run on them, and the bad-data catalogue (each case a clear error)."""

import numpy as np
import pytest

from optbench.data import load_npz
from optbench.errors import ConfigError, MissingInputError
from optbench.pipeline import Recipe, run_recipe


def _images(n=120, size=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.integers(0, 30, (n, size, size)) + 100 * y[:, None, None]).astype(np.uint8)
    return x, y


def test_one_array_pair_is_split_and_normalized_from_train(tmp_path):
    x, y = _images()
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y, classes=np.array(["cat", "dog", "owl"]))
    splits = load_npz(path, size=16, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [86, 10, 24]
    assert splits["train"].classes == ("cat", "dog", "owl")
    tf = splits["test"].transform
    train = splits["train"].images.numpy() / 255.0
    assert tf.mean == pytest.approx(train.mean(), abs=1e-4)
    assert tf.std == pytest.approx(train.std(), abs=1e-4)
    assert splits["val"].batch(0, 2).shape == (2, 1, 16, 16)
    # the same seed gives the same split; the parts do not overlap
    again = load_npz(path, size=16, seed=3)
    assert np.array_equal(again["test"].images, splits["test"].images)


def test_given_splits_and_float_images_are_kept(tmp_path):
    x, y = _images()
    path = tmp_path / "given.npz"
    np.savez(path, x_train=(x[:100] / 255.0).astype(np.float32), y_train=y[:100],
             x_test=x[100:, :, :, None], y_test=y[100:])
    splits = load_npz(path, seed=0)
    assert len(splits["test"]) == 20 and len(splits["train"]) + len(splits["val"]) == 100
    assert np.array_equal(splits["test"].images.numpy(), x[100:])
    assert splits["train"].classes == ("0", "1", "2")


def test_colour_arrays_channels_last_or_first(tmp_path):
    x, y = _images()
    rgb = np.stack([x, x // 2, 255 - x], -1)
    for name, array in (("last", rgb), ("first", np.moveaxis(rgb, -1, 1))):
        np.savez(tmp_path / f"{name}.npz", x=array, y=y)
        splits = load_npz(tmp_path / f"{name}.npz", seed=0)
        assert splits["train"].images.shape[1:] == (12, 12, 3)
        tf = splits["train"].transform
        assert tf.rgb and tf.channels == 3 and tf.mean[2] > tf.mean[1]
        assert splits["test"].batch(0, 2).shape == (2, 3, 12, 12)
    with pytest.raises(ConfigError, match="colour images but channels = 1"):
        load_npz(tmp_path / "last.npz", channels=1)


@pytest.mark.parametrize("arrays, message", [
    ({"images": "x", "labels": "y"}, r"has arrays \['images', 'labels'\].*needs x and y"),
    ({"x": "x2", "y": "y"}, r"images must be grey \(N, H, W\)"),
    ({"x": "x_bad_range", "y": "y"}, r"must lie in \[0, 1\]"),
    ({"x": "x_int32", "y": "y"}, "dtype int32"),
    ({"x": "x", "y": "y_short"}, "120 images but .* 119 labels"),
    ({"x": "x", "y": "y_float"}, "integer class ids"),
    ({"x": "x", "y": "y_negative"}, "negative class ids"),
    ({"x": "x", "y": "y_one"}, "at least two classes"),
    ({"x": "x_flat", "y": "y"}, r"images must be grey \(N, H, W\)"),
    ({"x": "x", "y": "y", "classes": "two_names"}, "classes names 2 classes"),
])
def test_bad_data_gets_an_error_naming_the_problem(tmp_path, arrays, message):
    x, y = _images()
    made = {"x": x, "y": y, "x2": np.repeat(x[..., None], 2, -1),
            "x_bad_range": x.astype(np.float32), "x_int32": x.astype(np.int32),
            "y_short": y[:-1], "y_float": y.astype(float), "y_negative": y - 1,
            "y_one": np.zeros_like(y), "x_flat": x.reshape(120, -1),
            "two_names": np.array(["a", "b"])}
    path = tmp_path / "bad.npz"
    np.savez(path, **{name: made[key] for name, key in arrays.items()})
    with pytest.raises(ConfigError, match=message):
        load_npz(path)


def test_pickled_objects_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(ConfigError, match="Python objects"):
        load_npz(path)
    with pytest.raises(MissingInputError, match="data_dir"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        load_npz(tmp_path / "junk.npz")


def test_a_recipe_runs_on_an_npz_dataset(tmp_path):
    x, y = _images(n=300)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y, classes=np.array(["cat", "dog", "owl"]))
    with pytest.raises(ConfigError, match="needs data_dir"):
        Recipe.from_dict({"data": {"dataset": "npz"}, "models": {"m": {"arch": "resnet18"}}})
    recipe = Recipe.from_dict({
        "data": {"dataset": "npz", "data_dir": str(path), "image_size": 16, "val_limit": 0},
        "models": {"net": {"arch": "resnet18", "num_classes": 3}},
        "bench": {"runtimes": ["torch-eager", "onnxruntime"], "batch_sizes": [1],
                  "min_time_s": 0.05, "max_time_s": 0.2},
        "steps": [{"name": "trained", "method": "train",
                   "train": {"epochs": 1, "batch_size": 32, "lr": 0.05,
                             "max_steps_per_epoch": 4}},
                  {"name": "onnx", "method": "export-onnx", "parity_examples": 32}]})
    result = run_recipe(recipe, tmp_path / "out", progress=False)
    assert result.bench.sections.class_names == ["cat", "dog", "owl"]
    manifest = (tmp_path / "out" / "artifacts" / "onnx" / "manifest.json").read_text()
    assert '"cat"' in manifest and '"mean"' in manifest
