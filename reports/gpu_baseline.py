"""GPU baseline: snnTorch BPTT training throughput and energy on CUDA, when a GPU exists.

Run: ``python -m spikeforge.reports.gpu_baseline --preset digits --json FILE``.
Times whole training steps with CUDA events and an explicit ``torch.cuda.synchronize()``; energy
from NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules) read
before and after, when pynvml is installed. Without a GPU it writes ``{"available": false}`` and
the report falls back to published figures and a roofline bound, labelled as such.
"""

import argparse
import json
import sys

__all__ = ["measure_gpu"]


def measure_gpu(cfg, dataset, steps=200, warmup=20, batch=None):
    import torch

    from spikeforge.model.data import load_dataset
    from spikeforge.model.encode import encode
    from spikeforge.reports.baselines import snntorch_step_fn

    if not torch.cuda.is_available():
        return {"available": False, "why": "torch.cuda.is_available() is False"}
    if batch:
        cfg = cfg.replace(batch=batch).fit_accumulators()
    dev = torch.device("cuda")
    _, step = snntorch_step_fn(cfg, device=dev)
    data = load_dataset(dataset)
    x = torch.tensor(encode(data.x_train, cfg.timesteps, data.vmax, "rate"), dtype=torch.float32,
                     device=dev)
    y = torch.tensor(data.y_train, device=dev)
    B = cfg.batch
    n = x.shape[1] // B
    for i in range(warmup):
        step(x[:, (i % n) * B:(i % n + 1) * B], y[(i % n) * B:(i % n + 1) * B])
    torch.cuda.synchronize()
    energy = None
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as exc:          # no pynvml or no energy counter on this GPU
        handle, energy = None, f"not measured: {exc}"
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(steps):
        step(x[:, (i % n) * B:(i % n + 1) * B], y[(i % n) * B:(i % n + 1) * B])
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end)
    if handle is not None:
        energy_j = (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - e0) / 1000.0
        energy = energy_j / (steps * B)
    return {"available": True, "device": torch.cuda.get_device_name(),
            "samples_per_s": steps * B / (ms / 1000.0), "ms_per_step": ms / steps,
            "joules_per_sample": energy, "steps": steps, "batch": B,
            "what": f"snnTorch BPTT on CUDA, torch {torch.__version__}, CUDA events + "
                    f"synchronize, NVML total energy"}


def main(argv=None):
    from spikeforge.model.config import preset
    from spikeforge.model.atomic import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="digits")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    result = measure_gpu(preset(args.preset), args.preset, batch=args.batch)
    result["preset"] = args.preset
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
