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
