"""Your images in an ImageFolder layout: real Fashion-MNIST test images written as PNG files in
class folders, both layouts, resizing, and the bad-data catalogue (each case a clear error)."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from optbench.data import load_fashion_mnist, load_image_folder
from optbench.errors import ConfigError, MissingInputError
from optbench.pipeline import Recipe, run_recipe


@pytest.fixture(scope="module")
def real(fashion_dir):
    test = load_fashion_mnist("test", root=fashion_dir, download=False)
    keep = {4: "coat", 5: "sandal", 8: "bag"}
    picked = [(i, keep[int(y)]) for i, y in enumerate(test.labels[:600]) if int(y) in keep]
    return [(test.images[i].numpy(), name) for i, name in picked[:90]]


def _write(root, items, split=None):
    for n, (image, name) in enumerate(items):
        folder = root / (split or "") / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{n}.png")
    return root


def test_class_folders_are_split_and_match_the_real_pixels(tmp_path, real):
    root = _write(tmp_path / "imgs", real)
    splits = load_image_folder(root, seed=1)
    assert splits["train"].classes == ("bag", "coat", "sandal")   # folder names, sorted
    assert sum(len(splits[s]) for s in ("train", "val", "test")) == len(real)
    pixels = {img.tobytes() for img, _ in real}
    assert all(im.numpy().tobytes() in pixels for im in splits["test"].images)
    tf = splits["train"].transform
    assert tf.mean == pytest.approx(splits["train"].images.numpy().mean() / 255, abs=1e-4)


def test_train_and_test_folders_and_resizing(tmp_path, real):
    root = tmp_path / "imgs"
    _write(root, real[:60], "train")
    _write(root, real[60:], "test")
    big = np.kron(real[0][0], np.ones((2, 2), np.uint8))      # a 56x56 image among 28x28
    Image.fromarray(big).save(root / "train" / real[0][1] / "big.png")
    with pytest.raises(ConfigError, match="2 sizes.*set \\[data\\] image_size"):
        load_image_folder(root)
    splits = load_image_folder(root, size=32)
    assert len(splits["test"]) == 30 and splits["test"].images.shape[1:] == (32, 32)


@pytest.mark.parametrize("case, message", [
    ("missing", "image folder not found"),
    ("empty", "no class sub-folders"),
    ("one_class", "at least two classes"),
    ("empty_class", "holds no images"),
    ("colour_as_grey", "holds colour images but channels = 1.*set \\[data\\] channels"),
    ("non_square", r"images are \[\(28, 20\)\].*set \[data\] image_size"),
    ("corrupt", "cannot be read as an image.*skip_corrupt"),
    ("train_only", "not both train/ and test/"),
    ("unknown_test_class", "a class the training folder does not have"),
])
def test_bad_data_gets_an_error_naming_the_problem(tmp_path, real, case, message):
    root = tmp_path / "imgs"
    if case != "missing":
        root.mkdir()
    if case == "empty":
        (root / "notes.txt").write_text("no images here")
    if case == "one_class":
        _write(root, [(im, "coat") for im, _ in real[:10]])
    if case == "non_square":
        _write(root, [(im[:, :20], name) for im, name in real[:20]])
    if case in ("empty_class", "colour_as_grey", "corrupt"):
        _write(root, real[:20])
        if case == "empty_class":
            (root / "shirt").mkdir()
        if case == "colour_as_grey":
            rgb = np.stack([real[0][0], real[0][0] // 2, real[0][0]], -1)
            Image.fromarray(rgb).save(root / "coat" / "colour.png")
        if case == "corrupt":
            (root / "coat" / "broken.png").write_bytes(b"\x89PNG not really")
    if case == "train_only":
        _write(root, real[:20], "train")
    if case == "unknown_test_class":
        _write(root, real[:20], "train")
        _write(root, [(real[0][0], "shirt")], "test")
    error = MissingInputError if case == "missing" else ConfigError
    with pytest.raises(error, match=message):
        load_image_folder(root, size=None if case == "non_square" else 28,
                          channels=1 if case == "colour_as_grey" else 0)


def test_corrupt_files_are_skipped_only_when_asked(tmp_path, real):
    root = _write(tmp_path / "imgs", real[:40])
    (root / "coat" / "broken.png").write_bytes(b"\x89PNG not really")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_image_folder(root, skip_corrupt=True)
    assert sum(len(s) for s in splits.values()) == 40
    assert any("broken.png" in str(w.message) for w in caught)


def test_an_rgb_file_with_equal_channels_counts_as_grayscale(tmp_path, real):
    root = _write(tmp_path / "imgs", real[:20])
    rgb = np.repeat(real[0][0][..., None], 3, -1)
    Image.fromarray(rgb).save(root / "coat" / "gray-as-rgb.png")
    assert sum(len(s) for s in load_image_folder(root).values()) == 21


def test_one_colour_image_makes_the_dataset_rgb(tmp_path, real):
    """Colour anywhere: every image becomes (H, W, 3) (grey ones repeated), the colour one keeps
    its channels, normalization is per channel, and the model takes 3 channels."""
    root = _write(tmp_path / "imgs", real[:20])
    rgb = np.stack([real[0][0], real[0][0] // 2, 255 - real[0][0]], -1)
    Image.fromarray(rgb).save(root / "coat" / "colour.png")
    splits = load_image_folder(root, seed=0, test_fraction=0.05)
    everything = np.concatenate([splits[s].images.numpy() for s in ("train", "val", "test")])
    assert everything.shape[1:] == (28, 28, 3)
    assert any(np.array_equal(im, rgb) for im in everything)
    tf = splits["train"].transform
    assert tf.rgb and tf.channels == 3 and len(tf.mean) == 3 and len(tf.std) == 3
    train = splits["train"].images.numpy() / 255.0
    assert tf.mean == pytest.approx(tuple(train.mean(axis=(0, 1, 2))), abs=1e-4)
    x = splits["train"].batch(0, 4)
    assert x.shape == (4, 3, 28, 28)
    mean, std = tf.normalization()
    expected = (torch.from_numpy(train[:4]).permute(0, 3, 1, 2).float() - mean) / std
    assert torch.allclose(x, expected, atol=1e-5)


def test_a_recipe_runs_on_an_image_folder(tmp_path, real):
    root = _write(tmp_path / "imgs", real)
    with pytest.raises(ConfigError, match="needs data_dir"):
        Recipe.from_dict({"data": {"dataset": "image-folder"},
                          "models": {"m": {"arch": "resnet18"}}})
    recipe = Recipe.from_dict({
        "data": {"dataset": "image-folder", "data_dir": str(root), "image_size": 16,
                 "val_limit": 0},
        "models": {"net": {"arch": "resnet18", "num_classes": 3}},
        "bench": {"runtimes": ["torch-eager"], "batch_sizes": [1], "min_time_s": 0.05,
                  "max_time_s": 0.2},
        "steps": [{"name": "trained", "method": "train",
                   "train": {"epochs": 1, "batch_size": 32, "lr": 0.05,
                             "max_steps_per_epoch": 2}}]})
    result = run_recipe(recipe, tmp_path / "out", progress=False)
    assert result.bench.sections.class_names == ["bag", "coat", "sandal"]


def test_a_recipe_may_give_the_normalization(tmp_path, real):
    from optbench.pipeline.recipe import DataConfig
    from optbench.pipeline.run import load_data

    root = _write(tmp_path / "imgs", real)
    splits = load_data(DataConfig(dataset="image-folder", data_dir=str(root), mean=(0.5,),
                                  std=(0.25,)))
    assert {(s.transform.mean, s.transform.std) for s in splits.values()} == {(0.5, 0.25)}
    x = splits["test"].batch(0, 1)
    assert torch.allclose(x, (splits["test"].images[:1].float()[:, None] / 255 - 0.5) / 0.25)
    with pytest.raises(ConfigError, match="given together"):
        DataConfig(mean=(0.5,))
    with pytest.raises(ConfigError, match="grey: give 1"):
        load_data(DataConfig(dataset="image-folder", data_dir=str(root), mean=(0.5, 0.5, 0.5),
                             std=(0.2, 0.2, 0.2)))
