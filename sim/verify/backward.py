"""Test harness and host driver of the Backward Engine, shared by the Amaranth simulator and cocotb.

- :class:`BackwardHarness` is an Amaranth Component that owns every memory the engine talks to
  (``lib.memory.Memory``) and exposes one host port (``host_sel``, ``host_addr``, ``host_wdata``,
  ``host_we``, ``host_rdata`` with one cycle of read latency) plus the engine's control ports.
  One Verilog build of it serves any number of test vectors.
- :func:`run_job` is the host driver: it loads one layer's vectors (unpacked numpy arrays), runs the
  engine, reads ``eps``, the non-zero bitmask and ``g_below`` back. It only needs a ``bus`` with
  ``set(name, value)``, ``get(name)`` and ``await tick()``, so the same code drives the Amaranth
  simulator (:class:`AmaranthBus`) and cocotb (:mod:`spikeforge.sim.verify.tb_backward`).
- :func:`golden_layer` computes the expected values with the golden model itself
  (``Network.backward_layer`` and ``FixedArith.backprop``), :func:`compare` checks word for word.
"""

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hdl.backward import BackwardEngine, control_members
from spikeforge.hdl.memmap import MemoryMap, addr_bits
from spikeforge.model.network import LayerTrace, Network

__all__ = ["BackwardHarness", "MEM", "run_job", "golden_layer", "compare", "check_job",
           "make_job", "AmaranthBus", "run_amaranth", "run_verilog", "jobs_to_npz",
           "npz_to_jobs", "results_to_npz", "npz_to_results"]

# host_sel codes
MEM = {"u": 0, "g": 1, "eps": 2, "nz": 3, "hb": 4, "w": 5, "gb": 6}
CONTROL = ("n_out", "n_in", "timesteps", "batch", "has_below", "sparse")


class BackwardHarness(wiring.Component):
    """The Backward Engine with its memories and a host port (simulation only).

    Members
    -------
    start, n_out, n_in, timesteps, batch, has_below, sparse, busy, done, cycles
        The engine's control ports, passed through.
    host_sel : In(3)
        Memory selected by the host (:data:`MEM`).
    host_addr, host_wdata, host_we : In
        Host write (one word per cycle); ``w`` and ``gb`` words are the ``P`` banks side by side.
    host_rdata : Out
        Word at ``host_addr`` of the previous cycle (``eps``, ``nz``, ``gb``).
    """

    def __init__(self, design):
        self.design, self.cfg, self.hw = design, design.cfg, design.hw
        self.memmap = mm = design.memmap
        cfg, P = self.cfg, mm.P
        self.data_width = max(P * cfg.u_bits, P * cfg.e_bits, P * cfg.w_bits, mm.spike_width)
        addr_width = max(addr_bits(d) for d in (mm.state_depth, mm.bank_depth, mm.spike_depth))
        super().__init__({
            **control_members(design),
            "host_sel": In(3),
            "host_addr": In(addr_width),
            "host_wdata": In(self.data_width),
            "host_we": In(1),
            "host_rdata": Out(self.data_width),
        })

    def elaborate(self, platform):
        cfg, mm = self.cfg, self.memmap
        P = mm.P
        m = Module()
        m.submodules.engine = be = BackwardEngine(self.design)
        for name in ("start",) + CONTROL:
            m.d.comb += getattr(be, name).eq(getattr(self, name))
        m.d.comb += [self.busy.eq(be.busy), self.done.eq(be.done), self.cycles.eq(be.cycles)]

        def host_write(key):
            return self.host_we & (self.host_sel == MEM[key])

        def new_mem(name, width, depth):
            mem = memory.Memory(shape=unsigned(width), depth=depth, init=[])
            m.submodules[name] = mem
            return mem

        def engine_read(mem, port):
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(port.addr), rp.en.eq(port.en), port.data.eq(rp.data)]

        def host_loaded(mem, key):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(self.host_addr), wp.data.eq(self.host_wdata),
                         wp.en.eq(host_write(key))]

        # u, g: host writes, engine reads
        for key, width, port in (("u", P * cfg.u_bits, be.u_rd), ("g", P * cfg.e_bits, be.g_rd)):
            mem = new_mem(key, width, mm.state_depth)
            host_loaded(mem, key)
            engine_read(mem, port)
        hb = new_mem("hb", mm.spike_width, mm.spike_depth)
        host_loaded(hb, "hb")
        engine_read(hb, be.hb_rd)

        readback = {}
        # eps: engine writes and reads back, host reads
        eps = new_mem("eps", P * cfg.e_bits, mm.state_depth)
        wp = eps.write_port()
        m.d.comb += [wp.addr.eq(be.eps_wr.addr), wp.data.eq(be.eps_wr.data),
                     wp.en.eq(be.eps_wr.en)]
        engine_read(eps, be.eps_rd)
        readback["eps"] = [eps.read_port()]
        nz = new_mem("nz", mm.spike_width, mm.spike_depth)
        wp = nz.write_port()
        m.d.comb += [wp.addr.eq(be.nz_wr.addr), wp.data.eq(be.nz_wr.data), wp.en.eq(be.nz_wr.en)]
        readback["nz"] = [nz.read_port()]

        # weight banks and g_below banks
        gb_ports = []
        for q in range(P):
            w = new_mem(f"w{q}", cfg.w_bits, mm.bank_depth)
            wp = w.write_port()
            m.d.comb += [wp.addr.eq(self.host_addr),
                         wp.data.eq(self.host_wdata[q * cfg.w_bits:(q + 1) * cfg.w_bits]),
                         wp.en.eq(host_write("w"))]
            engine_read(w, be.w_rd[q])
            gb = new_mem(f"gb{q}", cfg.e_bits, mm.state_depth)
            wp = gb.write_port()
            host = host_write("gb")
            m.d.comb += [
                wp.addr.eq(Mux(host, self.host_addr, be.gb_wr[q].addr)),
                wp.data.eq(Mux(host, self.host_wdata[q * cfg.e_bits:(q + 1) * cfg.e_bits],
                               be.gb_wr[q].data)),
                wp.en.eq(host | be.gb_wr[q].en),
            ]
            gb_ports.append(gb.read_port())
        readback["gb"] = gb_ports

        sel_d = Signal(3)
        m.d.sync += sel_d.eq(self.host_sel)
        for key, ports in readback.items():
            for rp in ports:
                m.d.comb += rp.addr.eq(self.host_addr)
            with m.If(sel_d == MEM[key]):
                m.d.comb += self.host_rdata.eq(Cat(*[rp.data for rp in ports]))
        return m


# ---- packing -----------------------------------------------------------------------------------

_pack = MemoryMap.pack_lanes
_unpack = MemoryMap.unpack_lanes


def _words(n, P):
    return -(-n // P)


def make_job(cfg, u, g, w=None, h_below=None, sparse=True, name="job"):
    """One layer's vectors: ``u, g`` (T, B, n_out) int; ``w`` (n_out, n_in); ``h_below``
    (T, B, n_in) 0/1, or ``None`` for the first layer."""
    u = np.asarray(u, dtype=np.int64)
    g = np.asarray(g, dtype=np.int64)
    T, B, n_out = u.shape
    job = {"name": name, "u": u, "g": g, "sparse": int(bool(sparse)), "n_out": n_out,
           "timesteps": T, "batch": B, "has_below": int(w is not None)}
    if w is not None:
        job["w"] = np.asarray(w, dtype=np.int64)
        job["h_below"] = np.asarray(h_below, dtype=np.int64)
        job["n_in"] = job["w"].shape[1]
    else:
        job["n_in"] = 0
    return job


def golden_layer(cfg, job):
    """Expected ``eps`` (T, B, n_out), ``nz`` and ``g_below`` (T, B, n_in) from the golden model."""
    net = Network(cfg, "fixed", weights=[np.zeros((o, i), dtype=np.int64)
                                         for i, o in zip(cfg.layers[:-1], cfg.layers[1:])])
    u = job["u"]
    trace = LayerTrace(x=None, u=u, o=(u > cfg.vth_int).astype(np.int64))
    eps = net.backward_layer(trace, job["g"])
    out = {"eps": eps, "nz": (eps != 0).astype(np.int64)}
    if job["has_below"]:
        T, B, n_out = eps.shape
        g = net.arith.backprop(eps.reshape(T * B, n_out), job["w"]).reshape(T, B, -1)
        out["g_below"] = g * job["h_below"]
    return out


def compare(expected, got, label=""):
    """Raise AssertionError naming the first mismatching word, if any."""
    for key, exp in expected.items():
        res = np.asarray(got[key])
        if exp.shape != res.shape:
            raise AssertionError(f"{label} {key}: shape {res.shape} != expected {exp.shape}")
        if not np.array_equal(exp, res):
            idx = tuple(int(x) for x in np.argwhere(exp != res)[0])
            n_bad = int((exp != res).sum())
            raise AssertionError(f"{label} {key}: {n_bad} mismatching words; first at [t,b,i]="
                                 f"{idx}: RTL {res[idx]} != golden {exp[idx]}")


# ---- host driver -------------------------------------------------------------------------------

async def _write(bus, sel, items):
    bus.set("host_sel", MEM[sel])
    bus.set("host_we", 1)
    for addr, word in items:
        bus.set("host_addr", addr)
        bus.set("host_wdata", word)
        await bus.tick()
    bus.set("host_we", 0)


async def _read(bus, sel, addrs):
    bus.set("host_sel", MEM[sel])
    bus.set("host_we", 0)
    out = []
    for addr in addrs:
        bus.set("host_addr", addr)
        await bus.tick()
        out.append(int(bus.get("host_rdata")))
    return out


async def run_job(bus, design, job, max_cycles=10_000_000):
    """Load ``job``, run the engine, read the results; returns arrays and the cycle counts."""
    mm, cfg = design.memmap, design.cfg
    P, NP, S = mm.P, mm.NP, mm.S
    u, g = job["u"], job["g"]
    T, B, n_out = u.shape
    n_in = int(job["n_in"])
    nw, nwb = _words(n_out, P), _words(n_in, P)
    points = [(t, b, t * B + b) for t in range(T) for b in range(B)]

    def state_words(arr, width):
        padded = np.zeros((T, B, nw * P), dtype=np.int64)
        padded[:, :, :n_out] = arr
        return [(k * NP + p, _pack(padded[t, b, k * P:(k + 1) * P], width))
                for t, b, p in points for k in range(nw)]

    await _write(bus, "u", state_words(u, cfg.u_bits))
    await _write(bus, "g", state_words(g, cfg.e_bits))
    if job["has_below"]:
        w = np.zeros((n_out, nwb * P), dtype=np.int64)
        w[:, :n_in] = job["w"]
        await _write(bus, "w", [(i * S + r, _pack(w[i, r * P:(r + 1) * P], cfg.w_bits))
                                for i in range(n_out) for r in range(nwb)])
        hb = job["h_below"]
        await _write(bus, "hb", [(p, sum(int(hb[t, b, j]) << j for j in range(n_in)))
                                 for t, b, p in points])
        await _write(bus, "gb", [(r * NP + p, 0) for _, _, p in points for r in range(nwb)])

    for name in CONTROL:
        bus.set(name, int(job[name]))
    bus.set("start", 1)
    await bus.tick()
    bus.set("start", 0)
    if hasattr(bus, "wait_done"):
        tb_cycles = await bus.wait_done()          # simulator-side wait (cocotb)
    else:
        tb_cycles = 0
        while True:
            await bus.tick()
            tb_cycles += 1
            if int(bus.get("done")):
                break
            if tb_cycles > max_cycles:
                raise RuntimeError(f"{job['name']}: no done after {max_cycles} cycles")
    await bus.tick()
    tb_cycles += 1          # the done cycle is busy too
    hw_cycles = int(bus.get("cycles"))

    async def read_points(sel, blocks):
        """(T, B, blocks * P) lanes of a state-layout memory, word ``k * NP + p``."""
        out = np.zeros((T, B, blocks * P), dtype=np.int64)
        words = iter(await _read(bus, sel, [k * NP + p for _, _, p in points
                                            for k in range(blocks)]))
        for t, b, _ in points:
            for k in range(blocks):
                out[t, b, k * P:(k + 1) * P] = _unpack(next(words), cfg.e_bits, P)
        return out

    eps = await read_points("eps", nw)
    nz_words = await _read(bus, "nz", [p for _, _, p in points])
    nz = np.array([[(nz_words[t * B + b] >> i) & 1 for i in range(n_out)]
                   for t in range(T) for b in range(B)], dtype=np.int64).reshape(T, B, n_out)
    result = {"eps": eps[:, :, :n_out], "eps_pad": eps[:, :, n_out:], "nz": nz,
              "cycles": hw_cycles, "tb_cycles": tb_cycles}
    if job["has_below"]:
        gb = await read_points("gb", nwb)
        result["g_below"] = gb[:, :, :n_in]
    return result


def check_job(cfg, job, result):
    """Golden comparison of one job's result (raises AssertionError)."""
    compare(golden_layer(cfg, job), result, label=job["name"])
    if np.any(result["eps_pad"] != 0):
        raise AssertionError(f"{job['name']}: padding lanes of eps words are not 0")
    if result["cycles"] != result["tb_cycles"]:
        raise AssertionError(f"{job['name']}: cycle counter {result['cycles']} != testbench "
                             f"count {result['tb_cycles']}")


# ---- back-ends ---------------------------------------------------------------------------------

class AmaranthBus:
    """``bus`` adapter over an Amaranth simulator testbench context."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    def set(self, name, value):
        self.ctx.set(getattr(self.dut, name), value)

    def get(self, name):
        return self.ctx.get(getattr(self.dut, name))

    async def tick(self):
        await self.ctx.tick()


def run_amaranth(design, jobs):
    """Run ``jobs`` in the Amaranth simulator; return the list of results."""
    from amaranth.sim import Simulator

    dut = BackwardHarness(design)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    results = []

    async def bench(ctx):
        bus = AmaranthBus(ctx, dut)
        for job in jobs:
            results.append(await run_job(bus, design, job))

    sim.add_testbench(bench)
    sim.run()
    return results



_ARRAYS = ("u", "g", "w", "h_below")
_SCALARS = ("sparse", "n_out", "n_in", "timesteps", "batch", "has_below")


def jobs_to_npz(path, jobs):
    arrays = {"n_jobs": np.array(len(jobs))}
    for n, job in enumerate(jobs):
        arrays[f"j{n}_name"] = np.array(job["name"])
        for key in _ARRAYS:
            if key in job:
                arrays[f"j{n}_{key}"] = job[key]
        for key in _SCALARS:
            arrays[f"j{n}_{key}"] = np.array(int(job[key]))
    np.savez(path, **arrays)


def npz_to_jobs(path):
    data = np.load(path)
    jobs = []
    for n in range(int(data["n_jobs"])):
        job = {"name": str(data[f"j{n}_name"])}
        for key in _ARRAYS + _SCALARS:
            if f"j{n}_{key}" in data:
                value = data[f"j{n}_{key}"]
                job[key] = int(value) if key in _SCALARS else value
        jobs.append(job)
    return jobs


def results_to_npz(path, results):
    arrays = {"n_results": np.array(len(results))}
    for n, res in enumerate(results):
        for key, value in res.items():
            arrays[f"r{n}_{key}"] = np.asarray(value)
    np.savez(path, **arrays)


def npz_to_results(path):
    data = np.load(path)
    out = []
    for n in range(int(data["n_results"])):
        prefix = f"r{n}_"
        res = {key[len(prefix):]: data[key] for key in data.files if key.startswith(prefix)}
        for key in ("cycles", "tb_cycles"):
            res[key] = int(res[key])
        out.append(res)
    return out


def run_verilog(design, jobs, simulator="verilator"):
    """Run ``jobs`` on the harness Verilog under cocotb (one build per design)."""
    import os

    from .harness import build_harness_verilog
    from .runner import run_testbench

    path, directory = build_harness_verilog(lambda: BackwardHarness(design), "sf_be_harness",
                                            design)
    build_dir = os.path.join(directory, simulator)
    os.makedirs(build_dir, exist_ok=True)
    vec = os.path.join(build_dir, "vectors.npz")
    res = os.path.join(build_dir, "results.npz")
    jobs_to_npz(vec, jobs)
    run_testbench(design, [path], "sf_be_harness", "spikeforge.sim.verify.tb_backward",
                  build_dir, vec, res, simulator=simulator)
    return npz_to_results(res)
