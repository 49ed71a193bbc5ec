"""Datasets: scikit-learn's bundled ``digits``, ``cifar10`` / ``cifar100`` (python-pickle layout),
``imagefolder`` (a folder or a .zip with ``train/<class>/*`` and ``test/<class>/*``: the training
images decoded once into memory when they fit ``cache_mb``, the rest on each access; every image the
run reads is decoded once on opening, so that unreadable files are named before any training) and
``synthetic`` (for tests). Nothing is downloaded.

Every dataset yields float tensors (C, H, W) at the configured input size, normalised per channel
with statistics of its training split, and integer labels. The test split is only for reporting:
the search splits the training data into a weight part and an architecture part
(``search_split``), retraining holds out a validation part (``train_val_split``).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import Dataset, Subset

from autonba.errors import AutonbaError
from autonba.registry import Registry


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "digits"
    path: str | None = Field(None, description="folder or file of cifar10 / cifar100 / imagefolder")
    input_size: int = Field(16, gt=0, le=1024)
    train_subset: int | None = Field(None, gt=0, description="use only this many training images (seeded)")
    test_subset: int | None = Field(None, gt=0)
    arch_fraction: float = Field(0.5, gt=0, lt=1, description="share of the training data for architecture steps")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share held out for model selection in retraining")
    augment: bool = Field(True, description="random crop and flip on training images (not for digits)")
    cache_mb: float = Field(1024, ge=0, description="imagefolder: decode the training images once into memory "
                                                    "(uint8) when they take at most this many MiB; 0: never")
    seed: int = Field(0, ge=0, le=2 ** 32 - 1)
    # synthetic
    classes: int = Field(10, gt=1, le=100_000)
    channels: int = Field(3, gt=0, le=64)
    samples: int = Field(512, gt=1, le=1_000_000)


@dataclass
class DataSplits:
    train: Dataset
    test: Dataset
    num_classes: int
    channels: int
    input_size: int


DATASETS: Registry[Callable[[DataConfig], DataSplits]] = Registry("dataset")


def _len(ds: Dataset) -> int:
    return len(ds)  # type: ignore[arg-type]  # torch's Dataset stub has no __len__; the datasets here all do


def load_data(cfg: DataConfig) -> DataSplits:
    splits = DATASETS.get(cfg.name)(cfg)
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.train_subset and cfg.train_subset < _len(splits.train):
        splits.train = Subset(splits.train, torch.randperm(_len(splits.train), generator=g)[:cfg.train_subset].tolist())
    if cfg.test_subset and cfg.test_subset < _len(splits.test):
        splits.test = Subset(splits.test, torch.randperm(_len(splits.test), generator=g)[:cfg.test_subset].tolist())
    base, idx = _base(splits.train)
    if isinstance(base, FolderImages):
        if len(idx) * 3 * cfg.input_size ** 2 <= cfg.cache_mb * 2 ** 20:
            splits.train, bad = base.decoded(idx)  # read every epoch: decode once (the test split is read once)
        else:
            bad = base.unreadable(idx)
        test, test_idx = _base(splits.test)
        assert isinstance(test, FolderImages)  # imagefolder gives both splits as FolderImages
        bad.update(test.unreadable(test_idx))
        if bad:
            raise AutonbaError(_unreadable_message(base.source, bad))
    return splits


def _base(ds: Dataset) -> tuple[Dataset, Sequence[int]]:
    """The dataset under a Subset (or ``ds`` itself) and the indices into it."""
    return (ds.dataset, ds.indices) if isinstance(ds, Subset) else (ds, range(_len(ds)))


def _unreadable_message(source: Path, bad: dict[str, str], shown: int = 10) -> str:
    listed = "; ".join(f"{n}: {why}" for n, why in sorted(bad.items())[:shown])
    more = f"; ... and {len(bad) - shown} more" if len(bad) > shown else ""
    return (f"dataset imagefolder: {len(bad)} image file{'s' if len(bad) > 1 else ''} in {source} cannot be "
            f"decoded (remove or replace them): {listed}{more}")


def _split(ds: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    n = _len(ds)
    k = max(1, min(n - 1, round(n * fraction)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(ds, perm[k:]), Subset(ds, perm[:k])


def search_split(splits: DataSplits, cfg: DataConfig) -> tuple[Subset, Subset]:
    """(weight part, architecture part) of the training data; the test split is never touched."""
    return _split(splits.train, cfg.arch_fraction, cfg.seed + 1)


def train_val_split(splits: DataSplits, cfg: DataConfig) -> tuple[Subset, Subset]:
    """(training part, validation part) for retraining with model selection on validation."""
    return _split(splits.train, cfg.val_fraction, cfg.seed + 2)


# ---- tensors in memory ------------------------------------------------------------------------------
class TensorImages(Dataset):
    """Images (N, C, H, W) in [0, 1] with labels; resized once, normalised, optionally augmented."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int, mean: torch.Tensor,
                 std: torch.Tensor, augment: bool = False):
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        self.x = (images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        self.y = labels.long()
        self.augment = augment

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.augment:
            x = _crop_flip(x)
        return x, self.y[i]


def _crop_flip(x: torch.Tensor, pad: int | None = None) -> torch.Tensor:
    """Random crop with zero padding (1/8 of the size) and a random horizontal flip."""
    size = x.shape[-1]
    pad = max(1, size // 8) if pad is None else pad
    xp = F.pad(x, (pad, pad, pad, pad))
    i, j = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    x = xp[:, i:i + size, j:j + size]
    return x.flip(-1) if torch.rand(()) < 0.5 else x


def _stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return images.mean((0, 2, 3)), images.std((0, 2, 3)).clamp(min=1e-6)


@DATASETS.register("digits")
def digits(cfg: DataConfig) -> DataSplits:
    """scikit-learn's bundled 8x8 digits (1,797 images), resized; a fixed 80/20 train/test split by seed."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
    n_test = len(y) // 5
    te, tr = perm[:n_test], perm[n_test:]
    mean, std = _stats(x[tr])
    return DataSplits(TensorImages(x[tr], y[tr], cfg.input_size, mean, std),
                      TensorImages(x[te], y[te], cfg.input_size, mean, std), 10, 1, cfg.input_size)


@DATASETS.register("synthetic")
def synthetic(cfg: DataConfig) -> DataSplits:
    """Learnable random data: one smooth template per class plus noise (for tests and benchmarks)."""
    g = torch.Generator().manual_seed(cfg.seed)
    s = cfg.input_size
    templates = F.interpolate(torch.rand(cfg.classes, cfg.channels, 4, 4, generator=g), size=(s, s), mode="bilinear")
    y = torch.randint(0, cfg.classes, (cfg.samples,), generator=g)
    x = (templates[y] + 0.3 * torch.randn(cfg.samples, cfg.channels, s, s, generator=g)).clamp(0, 1)
    n_test = max(1, cfg.samples // 5)
    mean, std = _stats(x[n_test:])
    return DataSplits(TensorImages(x[n_test:], y[n_test:], s, mean, std),
                      TensorImages(x[:n_test], y[:n_test], s, mean, std), cfg.classes, cfg.channels, s)


def _cifar(cfg: DataConfig, classes: int) -> DataSplits:
    if not cfg.path:
        raise AutonbaError(f"dataset cifar{classes} needs data.path: the folder of the python-pickle "
                           f"release ({'cifar-10-batches-py' if classes == 10 else 'cifar-100-python'})")
    root = Path(cfg.path)
    sub = root / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
    root = sub if sub.is_dir() else root
    names = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]) if classes == 10 else (["train"], ["test"])
    key = b"labels" if classes == 10 else b"fine_labels"
    missing = [n for n in names[0] + names[1] if not (root / n).is_file()]
    if missing:
        raise AutonbaError(f"dataset cifar{classes}: {root} lacks {', '.join(missing)} (expected the python-pickle "
                           f"layout: {', '.join(names[0] + names[1])})")

    def read(files):
        xs, ys = [], []
        for n in files:
            try:
                with open(root / n, "rb") as f:
                    d = pickle.load(f, encoding="bytes")
                xs.append(torch.as_tensor(d[b"data"]).view(-1, 3, 32, 32))
                ys.append(torch.as_tensor(d[key]))
            except (pickle.UnpicklingError, KeyError, EOFError, RuntimeError, ValueError) as e:
                raise AutonbaError(f"dataset cifar{classes}: {root / n} is not a CIFAR pickle batch ({e})") from None
        return torch.cat(xs).float() / 255.0, torch.cat(ys)

    xtr, ytr = read(names[0])
    xte, yte = read(names[1])
    mean, std = _stats(xtr[:5000])
    return DataSplits(TensorImages(xtr, ytr, cfg.input_size, mean, std, cfg.augment),
                      TensorImages(xte, yte, cfg.input_size, mean, std), classes, 3, cfg.input_size)


DATASETS.register("cifar10", lambda cfg: _cifar(cfg, 10))
DATASETS.register("cifar100", lambda cfg: _cifar(cfg, 100))


# ---- image folders (a directory or a .zip), decoded lazily ------------------------------------------
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class FolderImages(Dataset):
    """Images listed by (archive member or file path, label); each worker opens its own zip handle."""

    def __init__(self, source: Path, items: list[tuple[str, int]], size: int, mean, std, augment: bool):
        self.source, self.items, self.size = source, items, size
        self.mean, self.std, self.augment = mean, std, augment
        self._zip: zipfile.ZipFile | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self):
        return {**self.__dict__, "_zip": None}

    def _read(self, name: str) -> bytes:
        if self.source.suffix == ".zip":
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.source)
            return self._zip.read(name)
        return (self.source / name).read_bytes()

    def raw(self, i: int, scaled: bool = True) -> torch.Tensor:
        """Image ``i`` as (3, H, W): floats in [0, 1], or uint8 with ``scaled=False``."""
        from PIL import Image
        img = Image.open(io.BytesIO(self._read(self.items[i][0]))).convert("RGB")
        # Image.BILINEAR is set dynamically (hidden from type checkers); Image.Resampling needs pillow >= 9.1
        img = img.resize((self.size, self.size), Image.BILINEAR)  # type: ignore[attr-defined]
        u8 = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        u8 = u8.view(self.size, self.size, 3).permute(2, 0, 1)
        return u8.float() / 255.0 if scaled else u8

    def attempt(self, i: int) -> torch.Tensor | str:
        """``raw(i, scaled=False)``, or why image ``i`` does not decode (empty, not an image, truncated...).

        The full decode is the check: PIL's ``verify()`` passes a JPEG cut short, only decoding every
        pixel finds it."""
        from PIL import UnidentifiedImageError
        try:
            return self.raw(i, scaled=False)
        except UnidentifiedImageError:
            return "empty file" if not self._read(self.items[i][0]) else "not an image"
        except Exception as e:  # noqa: BLE001 - whatever stops this file decoding makes it unreadable
            return str(e) or type(e).__name__

    def unreadable(self, indices: Sequence[int]) -> dict[str, str]:
        """Why each image at ``indices`` that does not decode fails, by name (decoded one at a time, then dropped)."""
        bad = {self.items[i][0]: why for i in indices if isinstance(why := self.attempt(i), str)}
        self.close()
        return bad

    def close(self) -> None:
        """Close this process's zip handle: data-loader workers forked later must each open their own."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __getitem__(self, i: int):
        return _normalise(self.raw(i), self.mean, self.std, self.augment), self.items[i][1]

    def decoded(self, indices: Sequence[int]) -> tuple[DecodedImages, dict[str, str]]:
        """The images at ``indices``, decoded now (in this process) and kept as uint8, and why each that does
        not decode fails, by name (its place left black)."""
        u8 = torch.zeros(len(indices), 3, self.size, self.size, dtype=torch.uint8)
        bad: dict[str, str] = {}
        for k, i in enumerate(indices):
            x = self.attempt(i)
            if isinstance(x, str):
                bad[self.items[i][0]] = x
            else:
                u8[k] = x
        return DecodedImages(u8, [self.items[i][1] for i in indices], self.mean, self.std, self.augment), bad


class DecodedImages(Dataset):
    """Decoded uint8 images (N, 3, H, W): the same items as the FolderImages they came from."""

    def __init__(self, images: torch.Tensor, labels: list[int], mean, std, augment: bool):
        self.images, self.labels, self.mean, self.std, self.augment = images, labels, mean, std, augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return _normalise(self.images[i].float() / 255.0, self.mean, self.std, self.augment), self.labels[i]


def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, augment: bool) -> torch.Tensor:
    x = (x - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
    return _crop_flip(x) if augment else x


@DATASETS.register("imagefolder")
def imagefolder(cfg: DataConfig) -> DataSplits:
    if not cfg.path:
        raise AutonbaError("dataset imagefolder needs data.path: a folder or .zip holding train/<class>/* "
                           "and test/<class>/*")
    src = Path(cfg.path)
    if not src.exists():
        raise AutonbaError(f"dataset imagefolder: {src} does not exist (expected a folder or .zip holding "
                           "train/<class>/* and test/<class>/*)")
    if src.suffix == ".zip":
        try:
            with zipfile.ZipFile(src) as z:
                names = [n for n in z.namelist() if n.lower().endswith(_IMAGE_EXT)]
        except zipfile.BadZipFile:
            raise AutonbaError(f"dataset imagefolder: {src} is not a valid zip file") from None
    elif src.is_dir():
        names = [str(p.relative_to(src)) for p in src.rglob("*") if p.suffix.lower() in _IMAGE_EXT]
    else:
        raise AutonbaError(f"dataset imagefolder: {src} is neither a folder nor a .zip file")
    split: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for n in names:
        parts = Path(n).parts
        # accept one optional top-level folder (e.g. cifar10/train/cat/1.jpg)
        for k in range(len(parts) - 2):
            if parts[k] in split and len(parts) - k == 3:
                split[parts[k]].append((n, parts[k + 1]))
                break
    if not split["train"] or not split["test"]:
        raise AutonbaError(f"dataset imagefolder: {src} must hold images under train/<class>/ and test/<class>/ "
                           f"(found {len(split['train'])} train and {len(split['test'])} test images)")
    classes = sorted({c for _, c in split["train"]})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for _, c in split["test"]} - set(classes))
    if unknown:
        raise AutonbaError(f"dataset imagefolder: test classes {unknown} have no training images")
    items = {k: sorted((n, index[c]) for n, c in v) for k, v in split.items()}
    probe = FolderImages(src, items["train"], cfg.input_size, torch.zeros(3), torch.ones(3), False)
    g = torch.Generator().manual_seed(cfg.seed)
    # the first 256 readable images of a seeded order (load_data names the unreadable ones)
    sample: list[torch.Tensor] = []
    for i in torch.randperm(len(probe), generator=g).tolist():
        if len(sample) == 256:
            break
        if isinstance(x := probe.attempt(i), torch.Tensor):
            sample.append(x)
    mean, std = _stats(torch.stack(sample).float() / 255.0) if sample else (torch.zeros(3), torch.ones(3))
    return DataSplits(FolderImages(src, items["train"], cfg.input_size, mean, std, cfg.augment),
                      FolderImages(src, items["test"], cfg.input_size, mean, std, False),
                      len(classes), 3, cfg.input_size)
