import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from autonba.data import DataConfig, load_data, search_split, train_val_split
from autonba.errors import AutonbaError

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.zip"


def test_digits_fixed_split_and_size():
    a = load_data(DataConfig(name="digits", input_size=12, seed=1))
    b = load_data(DataConfig(name="digits", input_size=12, seed=1))
    assert len(a.train) + len(a.test) == 1797 and a.channels == 1 and a.num_classes == 10
    assert a.train[0][0].shape == (1, 12, 12)
    assert torch.equal(a.test[5][0], b.test[5][0])


def test_search_split_is_disjoint_and_leaves_test_alone():
    cfg = DataConfig(name="synthetic", samples=100, input_size=8)
    s = load_data(cfg)
    w, a = search_split(s, cfg)
    assert len(w) + len(a) == len(s.train) and not set(w.indices) & set(a.indices)
    t, v = train_val_split(s, cfg)
    assert len(t) + len(v) == len(s.train)


def _write_cifar(root: Path, n: int = 6):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        (root / name).write_bytes(pickle.dumps(d))


def test_cifar_pickle_layout(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    s = load_data(DataConfig(name="cifar10", path=str(tmp_path), input_size=32))
    assert len(s.train) == 30 and len(s.test) == 6 and s.train[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("cfg,msg", [
    (dict(name="cifar10"), "needs data.path"),
    (dict(name="cifar10", path="/nonexistent"), "lacks data_batch_1"),
    (dict(name="imagefolder", path="/nonexistent"), "does not exist"),
    (dict(name="nope"), "unknown dataset 'nope'; allowed: cifar10, cifar100, digits, imagefolder, synthetic"),
])
def test_bad_data_paths_give_clear_errors(cfg, msg):
    with pytest.raises(AutonbaError) as e:
        load_data(DataConfig(**cfg))
    assert msg in str(e.value)


def test_corrupt_cifar_batch(tmp_path):
    _write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(AutonbaError, match="not a CIFAR pickle batch"):
        load_data(DataConfig(name="cifar10", path=str(tmp_path / "c")))


def _png(color) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("as_zip", [True, False])
def test_imagefolder_zip_and_folder(tmp_path, as_zip):
    files = {f"{split}/{cls}/{i}.png": _png((200 if cls == "red" else 0, 0, 200 if cls == "blue" else 0))
             for split in ("train", "test") for cls in ("red", "blue") for i in range(3)}
    if as_zip:
        src = tmp_path / "d.zip"
        with zipfile.ZipFile(src, "w") as z:
            for n, b in files.items():
                z.writestr(f"top/{n}", b)
    else:
        src = tmp_path / "d"
        for n, b in files.items():
            (src / n).parent.mkdir(parents=True, exist_ok=True)
            (src / n).write_bytes(b)
    s = load_data(DataConfig(name="imagefolder", path=str(src), input_size=8))
    assert len(s.train) == 6 and len(s.test) == 6 and s.num_classes == 2
    x, y = s.test[0]
    assert x.shape == (3, 8, 8) and y in (0, 1)
    loader = torch.utils.data.DataLoader(s.train, batch_size=3, num_workers=2)
    assert sum(len(b[1]) for b in loader) == 6


def test_imagefolder_training_images_decoded_once_give_the_same_items(tmp_path):
    from autonba.data.datasets import DecodedImages
    src = tmp_path / "d"
    for split in ("train", "test"):
        for cls in range(3):
            for i in range(4):
                (src / split / f"c{cls}").mkdir(parents=True, exist_ok=True)
                (src / split / f"c{cls}" / f"{i}.png").write_bytes(_png((40 * i, 80 * cls, 7 * i + cls)))
    base = dict(name="imagefolder", path=str(src), input_size=6, augment=False)
    for extra in ({}, {"train_subset": 7}):
        cached = load_data(DataConfig(**base, **extra))
        lazy = load_data(DataConfig(**base, **extra, cache_mb=0))
        assert isinstance(cached.train, DecodedImages) and not isinstance(lazy.train, DecodedImages)
        assert len(cached.train) == len(lazy.train) == extra.get("train_subset", 12)
        for i in range(len(lazy.train)):
            (xc, yc), (xl, yl) = cached.train[i], lazy.train[i]
            assert torch.equal(xc, xl) and yc == yl
    tiny = load_data(DataConfig(**base, cache_mb=12 * 3 * 36 / 2 ** 20 - 1e-9))  # one byte short
    assert not isinstance(tiny.train, DecodedImages)


def test_imagefolder_without_the_layout(tmp_path):
    src = tmp_path / "z.zip"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("images/a.png", _png((0, 0, 0)))
    with pytest.raises(AutonbaError, match="train/<class>/ and test/<class>/"):
        load_data(DataConfig(name="imagefolder", path=str(src)))


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="CIFAR-10 JPEG zip not present")
def test_real_cifar10_zip():
    s = load_data(DataConfig(name="imagefolder", path=str(SHARED_CIFAR), input_size=32, train_subset=64,
                             test_subset=32))
    assert s.num_classes == 10 and len(s.train) == 64 and len(s.test) == 32
    assert s.train[0][0].shape == (3, 32, 32)


def _noise(seed: int, fmt: str = "JPEG") -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


# every kind of unreadable file, in both splits: each fails differently in PIL (some only on a full decode)
BAD_FILES = {
    "train/a/cut.jpg": _noise(1)[:300], "train/a/no_end.jpg": _noise(2)[:-2],
    "train/b/cut.png": _noise(4, "PNG")[:400], "train/b/empty.png": b"", "train/b/text.jpg": b"not an image at all",
    "test/a/cut.jpg": _noise(3)[:-20], "test/a/empty.jpeg": b"", "test/b/notes.png": b"PNG? no",
}


def _image_folder(tmp_path, as_zip: bool, bad: dict[str, bytes]) -> Path:
    files = {f"{split}/{cls}/{i}.jpg": _noise(10 * i + (cls == "b")) for split in ("train", "test")
             for cls in ("a", "b") for i in range(4)}
    files.update(bad)
    if as_zip:
        src = tmp_path / "d.zip"
        with zipfile.ZipFile(src, "w") as z:
            for n, b in files.items():
                z.writestr(n, b)
    else:
        src = tmp_path / "d"
        for n, b in files.items():
            (src / n).parent.mkdir(parents=True, exist_ok=True)
            (src / n).write_bytes(b)
    return src


@pytest.mark.parametrize("as_zip", [True, False])
@pytest.mark.parametrize("cache_mb", [1024, 0])
def test_unreadable_images_all_named_on_opening(tmp_path, as_zip, cache_mb):
    src = _image_folder(tmp_path, as_zip, BAD_FILES)
    with pytest.raises(AutonbaError) as e:
        load_data(DataConfig(name="imagefolder", path=str(src), input_size=8, cache_mb=cache_mb))
    msg = str(e.value)
    assert f"8 image files in {src} cannot be decoded" in msg and "\n" not in msg
    for name in BAD_FILES:
        assert f"{name}: " in msg, name
    assert "train/b/empty.png: empty file" in msg and "train/b/text.jpg: not an image" in msg
    assert "truncated" in msg and "/0.jpg" not in msg


def test_checked_zip_splits_leave_no_handle_for_forked_workers_to_share(tmp_path):
    s = load_data(DataConfig(name="imagefolder", path=str(_image_folder(tmp_path, True, {})), input_size=8,
                             cache_mb=0))
    assert s.train._zip is None and s.test._zip is None
    loader = torch.utils.data.DataLoader(s.test, batch_size=2, num_workers=2)
    assert torch.equal(torch.cat([x for x, _ in loader]), torch.stack([s.test[i][0] for i in range(len(s.test))]))


def test_a_long_list_of_unreadable_images_is_shortened(tmp_path):
    src = _image_folder(tmp_path, True, {f"test/a/bad{i:02}.jpg": b"" for i in range(25)})
    with pytest.raises(AutonbaError, match=r"^dataset imagefolder: 25 image files .*: test/a/bad00.jpg: empty file; "
                                           r"(test/a/bad0\d.jpg: empty file; ){9}\.\.\. and 15 more$"):
        load_data(DataConfig(name="imagefolder", path=str(src), input_size=8))


def test_cli_stops_on_unreadable_images_before_training(tmp_path, capsys):
    from autonba.cli import main
    src = _image_folder(tmp_path, True, BAD_FILES)
    out = tmp_path / "run"
    assert main(["search", "--set", "data.name=imagefolder", "--set", f"data.path={src}", "--set", "data.input_size=8",
                 "--set", "device=cpu", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autonba: error: dataset imagefolder: 8 image files"), err
    assert all(name in err for name in BAD_FILES) and "Traceback" not in err
    assert not any((out / f).exists() for f in ("checkpoint.pt", "search_log.jsonl", "result.json"))
