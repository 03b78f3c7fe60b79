"""Weight files and checkpoints: atomic writes, and loads that reject corrupt or mismatched files.

A weights file is an ``.npz`` with ``format = "spikeforge-weights-v1"``, the ``mode`` its values are
in (``fixed``: int64 codes with ``w_frac`` fraction bits; ``float``: float64), the ``config`` (JSON)
it was trained with, and one array ``w<l>`` of shape ``(n_out, n_in)`` per layer, then ``v<l>`` of
shape ``(n_out, n_out)`` per recurrent layer (``Config.weight_names``).
"""

import io
import json
import os
import zipfile
import zlib

import numpy as np

from .atomic import atomic_write_bytes
from .fixedpoint import smax, smin

__all__ = ["WeightsError", "save_weights", "load_weights", "load_weights_file", "convert_weights",
           "FORMAT"]

FORMAT = "spikeforge-weights-v1"


class WeightsError(ValueError):
    """A weights or checkpoint file that cannot be used; the message says why and what to do."""


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def save_weights(path, weights, cfg, mode, extra=None):
    """Atomically write ``weights`` (a list of arrays in ``mode``'s representation)."""
    arrays = {"format": np.array(FORMAT), "mode": np.array(mode),
              "config": np.array(cfg.to_json())}
    names = cfg.weight_names()       # a list that does not match is stored as given (w<i>):
    for i, w in enumerate(weights):  # the load names what is missing or extra
        arrays[names[i] if len(weights) == len(names) else f"w{i}"] = np.asarray(w)
    for key, value in (extra or {}).items():
        arrays[key] = np.asarray(value)
    atomic_write_bytes(path, _npz_bytes(arrays))


def _read(path):
    if not os.path.exists(path):
        raise WeightsError(f"{path}: no such weights file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise WeightsError(f"{path}: not a readable spikeforge weights file ({exc}); "
                           f"it may be truncated or corrupt: retrain or restore it") from None


def load_weights(path, cfg, mode):
    """Load weights for ``cfg`` in ``mode``, converting between modes where exact.

    Returns ``(weights, arrays)`` where ``arrays`` holds every stored entry (for checkpoints).
    """
    from .arith import make_arith
    from .config import Config, ConfigError

    arrays = _read(path)
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        raise WeightsError(f"{path}: missing or unknown format tag (expected {FORMAT!r}); "
                           f"is this a spikeforge weights file?")
    stored_mode = str(arrays.get("mode", ""))
    if stored_mode not in ("fixed", "float"):
        raise WeightsError(f"{path}: unknown mode {stored_mode!r} (expected fixed or float)")
    try:
        stored_cfg = Config.from_dict(json.loads(str(arrays["config"])))
    except (KeyError, json.JSONDecodeError, ConfigError, TypeError) as exc:
        raise WeightsError(f"{path}: its stored config is missing or invalid ({exc})") from None
    n = cfg.n_layers
    weights = []
    for key, want in zip(cfg.weight_names(), cfg.weight_shapes()):
        i = int(key[1:])
        if key not in arrays:
            what = f"layer {i}" if key[0] == "w" else f"recurrent weights of layer {i}"
            raise WeightsError(f"{path}: has no {what} ({key}); the config has {n} layers "
                               f"{list(cfg.layers)}, recurrent {list(cfg.recurrent)}")
        w = arrays[key]
        if w.shape != want:
            what = f"layer {i}" if key[0] == "w" else f"recurrent layer {i} ({key})"
            raise WeightsError(f"{path}: {what} has shape {w.shape}, the config "
                               f"{list(cfg.layers)} needs {want}; use a file trained for "
                               f"these layer sizes")
        weights.append(w)
    if f"w{n}" in arrays:
        raise WeightsError(f"{path}: has more layers than the config {list(cfg.layers)}")
    extra = sorted(k for k in arrays if k.startswith("v") and k[1:].isdigit()
                   and k not in cfg.weight_names())
    if extra:
        raise WeightsError(f"{path}: holds recurrent weights {extra} but the config's recurrent "
                           f"layers are {list(cfg.recurrent)}; use the config it was trained "
                           f"with")
    if stored_mode == "fixed":
        for i, w in enumerate(weights):
            if not np.issubdtype(w.dtype, np.integer):
                raise WeightsError(f"{path}: layer {i} is {w.dtype}, fixed-mode weights are ints")
            lo, hi = smin(stored_cfg.w_bits), smax(stored_cfg.w_bits)
            if w.size and (w.min() < lo or w.max() > hi):
                raise WeightsError(f"{path}: layer {i} has values outside the {stored_cfg.w_bits}"
                                   f"-bit range [{lo}, {hi}]: the file is corrupt")
    else:
        for i, w in enumerate(weights):
            if not np.issubdtype(w.dtype, np.floating) or not np.all(np.isfinite(w)):
                raise WeightsError(f"{path}: layer {i} is not finite float data")
    weights = convert_weights(weights, stored_cfg, stored_mode, cfg, mode, path)
    return weights, arrays


def load_weights_file(path):
    """``(weights, cfg, mode)`` of a weights file, with the config and mode it stores."""
    from .config import Config, ConfigError
    arrays = _read(path)
    try:
        cfg = Config.from_dict(json.loads(str(arrays["config"])))
        mode = str(arrays["mode"])
    except (KeyError, json.JSONDecodeError, ConfigError, TypeError) as exc:
        raise WeightsError(f"{path}: its stored config or mode is missing or invalid ({exc}); "
                           f"is this a spikeforge weights file?") from None
    weights, _ = load_weights(path, cfg, mode)
    return weights, cfg, mode


def convert_weights(weights, src_cfg, src_mode, cfg, mode, where="weights"):
    """Convert weights between modes/formats; fixed-to-fixed must keep the format."""
    from .arith import make_arith
    if src_mode == mode == "fixed":
        if (src_cfg.w_bits, src_cfg.w_frac) != (cfg.w_bits, cfg.w_frac):
            raise WeightsError(f"{where}: weights are {src_cfg.w_bits}-bit with {src_cfg.w_frac} "
                               f"fraction bits but the config wants {cfg.w_bits}/{cfg.w_frac}; "
                               f"use the same w_bits/w_frac")
        return [np.asarray(w, dtype=np.int64) for w in weights]
    floats = [make_arith(src_cfg, src_mode).weights_to_float(np.asarray(w)) for w in weights]
    dst = make_arith(cfg, mode)
    return [dst.weights_from_float(w) for w in floats]
