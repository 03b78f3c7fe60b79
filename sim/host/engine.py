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

from spikeforge.model.network import LayerTrace, Network

__all__ = ["RtlEngine", "RtlMismatch", "HilEngine", "JobEngine"]


class RtlMismatch(AssertionError):
    pass


def _first_mismatch(got, want):
    for layer, (a, b) in enumerate(zip(got, want)):
        if not np.array_equal(a, b):
            i, j = np.argwhere(a != b)[0]
            return f"layer {layer} W[{i},{j}]: accelerator {a[i, j]}, golden {b[i, j]}"
    return None


class _GoldenMirrored:
    """An engine whose weights live both on the accelerator and in a golden ``Network``
    (``self.golden``), loaded through ``self.drv`` whenever they are set."""

    def _batched(self, x, infer):
        """Predictions of ``x`` (T, N, n) through ``infer`` (one batch of ``cfg.batch``
        samples in, its predictions out), the last batch padded with silent samples."""
        B = self.cfg.batch
        T, N, n = x.shape
        preds = []
        for i in range(0, N, B):
            chunk = x[:, i:i + B]
            if chunk.shape[1] < B:
                chunk = np.concatenate([chunk, np.zeros((T, B - chunk.shape[1], n), chunk.dtype)],
                                       axis=1)
            preds.append(np.asarray(infer(chunk))[:min(B, N - i)])
            self.predictions_checked += min(B, N - i)
        return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)

    @property
    def weights(self):
        return self.golden.weights

    @weights.setter
    def weights(self, weights):
        self.golden.weights = [np.array(w, dtype=np.int64) for w in weights]
        self.run(self.drv.load_weights(self.golden.weights))


class RtlEngine(_GoldenMirrored):
    def __init__(self, driver, cfg, run, seed=0, check=True):
        self.drv, self.cfg, self.run = driver, cfg, run
        self.golden = Network(cfg, "fixed", seed=seed)
        self.check = check
        self.steps_checked = 0
        self.predictions_checked = 0
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
        def one(chunk):
            got = self.run(self.drv.infer(chunk))
            want = self.golden.predict(chunk)
            if self.check and not np.array_equal(got, want):
                raise RtlMismatch(f"inference predictions differ from the golden model: "
                                  f"accelerator {got.tolist()}, golden {want.tolist()}")
            return got
        return self._batched(x, one)


class HilEngine(_GoldenMirrored):
    """Hardware in the loop: the forward pass of every step runs on the accelerator (INFER, then
    the state read back: spikes and surrogate bits, or ``u`` with the reset-path gradient); the
    golden model computes the backward pass and the update from those traces; the new weights
    are written back before the next step. With an exact forward pass this is golden training
    bit for bit; ``forward_mismatches`` counts the steps whose hardware traces differed from the
    golden model's own forward pass (``check``), which a perturbed or faulty forward would show.
    """

    def __init__(self, driver, cfg, run, seed=0, check=True):
        self.drv, self.cfg, self.run = driver, cfg, run
        self.golden = Network(cfg, "fixed", seed=seed)
        self.check = check
        self.steps_checked = 0              # steps trained (weights come from the golden model)
        self.predictions_checked = 0
        self.forward_mismatches = 0
        self.run(self.drv.load_weights(self.golden.weights))

    def traces(self, x):
        """Layer traces of the accelerator's forward pass of batch ``x``."""
        _, states = self.run(self.drv.forward(x))
        traces, inp = [], np.asarray(x, dtype=np.int64)
        for state in states:
            traces.append(LayerTrace(x=inp, u=state.get("u"), o=state["o"], h=state.get("h")))
            inp = state["o"]
        return traces

    def train_step(self, x, labels):
        traces = self.traces(x)
        if self.check:
            own = self.golden.forward(x)
            same = all(np.array_equal(a.o, b.o) and np.array_equal(
                self.golden.surrogate_of(a), self.golden.arith.surrogate(b.u))
                for a, b in zip(traces, own))
            self.forward_mismatches += not same
        result = self.golden.train_traces(traces, labels)
        self.run(self.drv.load_weights(self.golden.weights))
        self.steps_checked += 1
        return result

    def predict(self, x):
        return self._batched(x, lambda chunk: self.run(self.drv.infer(chunk)))


class JobEngine(_GoldenMirrored):
    """Whole epochs on the accelerator's training job (a design with an on-chip data set),
    checked against the golden model.

    The data set (training samples, then test samples) is uploaded once. Each
    :meth:`run_epochs` call runs one job over the given orders, the board alone; afterwards the
    weights are read back and compared word for word with a golden
    :class:`~spikeforge.model.network.Network` trained on the same orders
    (:func:`spikeforge.model.train.job_golden`), and so are the per-epoch test counts.
    :func:`spikeforge.model.train.train` drives it epochs at a time (``checkpoint_every`` of
    its options: one checkpoint after each call), so checkpoints, ``--resume`` and
    ``metrics.json`` work as for every other engine.
    """

    def __init__(self, driver, cfg, run, data, seed=0):
        if not driver.mm.has_data:
            raise RtlMismatch("this design has no on-chip data set")
        self.drv, self.cfg, self.run, self.data = driver, cfg, run, data
        self.encoder = driver.mm.hw.encoder          # the on-chip encoder's code
        self.golden = Network(cfg, "fixed", seed=seed)
        self.x = np.concatenate([data.x_train, data.x_test])
        self.y = np.concatenate([data.y_train, data.y_test])
        self.n_train, self.n_test = len(data.x_train), len(data.x_test)
        self.steps_checked = 0
        self.predictions_checked = 0
        self.epochs_run = 0
        self.run(self.drv.upload_dataset(self.x, self.y))
        self.run(self.drv.load_weights(self.golden.weights))

    def run_epochs(self, orders):
        """Train ``len(orders)`` epochs on the board; returns ``[(test accuracy, mean loss)]``."""
        from spikeforge.model.train import job_golden
        got = self.run(self.drv.run_job(orders, self.n_train, self.n_train, self.n_test))
        losses = []
        want = job_golden(self.golden, self.x, self.y, self.data.vmax, orders, self.n_train,
                          self.n_train, self.n_test, losses=losses, encoder=self.encoder)
        where = _first_mismatch(self.run(self.drv.read_weights()), self.golden.weights)
        if where:
            raise RtlMismatch(f"after epoch {self.epochs_run + len(orders)} the board's weights "
                              f"differ from the golden model: {where}")
        if list(got) != list(want):
            raise RtlMismatch(f"the board counted {got} correct test predictions per epoch, "
                              f"the golden model {want}")
        B = self.cfg.batch
        self.epochs_run += len(orders)
        self.steps_checked += len(orders) * (self.n_train // B)
        self.predictions_checked += len(orders) * self.n_test
        return [(c / self.n_test, loss) for c, loss in zip(got, losses)]
