"""A training engine backed by the accelerator's RTL, checked against the golden model.

:class:`RtlEngine` has the interface :func:`spikeforge.model.train.train` drives
(``weights``, ``train_step``, ``predict``) and runs each call on the accelerator through the host
driver. Every training step is mirrored by a golden :class:`~spikeforge.model.network.Network`:
after the step the weights are read back from the accelerator and compared word for word, and a
mismatch stops training with the first differing weight. Predictions are compared too.

The driver's coroutines are called through a ``run`` function that blocks until they finish (a
cocotb ``resume`` bridge under simulation, ``asyncio.run`` over a serial port).
"""

import numpy as np

from spikeforge.model.network import Network

__all__ = ["RtlEngine", "RtlMismatch"]


class RtlMismatch(AssertionError):
    pass


def _first_mismatch(got, want):
    for layer, (a, b) in enumerate(zip(got, want)):
        if not np.array_equal(a, b):
            i, j = np.argwhere(a != b)[0]
            return f"layer {layer} W[{i},{j}]: accelerator {a[i, j]}, golden {b[i, j]}"
    return None


class RtlEngine:
    def __init__(self, driver, cfg, run, seed=0, check=True):
        self.drv, self.cfg, self.run = driver, cfg, run
        self.golden = Network(cfg, "fixed", seed=seed)
        self.check = check
        self.steps_checked = 0
        self.predictions_checked = 0
        self.run(self.drv.load_weights(self.golden.weights))

    @property
    def weights(self):
        return self.golden.weights

    @weights.setter
    def weights(self, weights):
        self.golden.weights = [np.array(w, dtype=np.int64) for w in weights]
        self.run(self.drv.load_weights(self.golden.weights))

    def train_step(self, x, labels):
        self.run(self.drv.train_step(x, labels))
        result = self.golden.train_step(x, labels)
        if self.check:
            got = self.run(self.drv.read_weights())
            where = _first_mismatch(got, self.golden.weights)
            if where:
                raise RtlMismatch(f"after training step {self.steps_checked + 1} the "
                                  f"accelerator's weights differ from the golden model: {where}")
            self.steps_checked += 1
        return result

    def predict(self, x):
        B = self.cfg.batch
        T, N, n = x.shape
        preds = []
        for i in range(0, N, B):
            chunk = x[:, i:i + B]
            if chunk.shape[1] < B:
                chunk = np.concatenate([chunk, np.zeros((T, B - chunk.shape[1], n), chunk.dtype)],
                                       axis=1)
            got = self.run(self.drv.infer(chunk))
            want = self.golden.predict(chunk)
            if self.check and not np.array_equal(got, want):
                raise RtlMismatch(f"inference predictions differ from the golden model: "
                                  f"accelerator {got.tolist()}, golden {want.tolist()}")
            self.predictions_checked += min(B, N - i)
            preds.append(np.asarray(got)[:min(B, N - i)])
        return np.concatenate(preds)
