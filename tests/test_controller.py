"""The accelerator's controller on its own (Amaranth simulator), with model engines.

Each engine is modelled by the testbench: a ``start`` from the controller is answered by a
``done`` pulse some cycles later. The test records every start with the thread's layer and block
and checks the documented order with pipelining off, the data dependencies with pipelining on,
that pipelining saves cycles, the host's view (``busy``, the buffer conditions) and the counter
clear pulse.
"""

import pytest
from amaranth.sim import Simulator

from conftest import tiny_design
from spikeforge.hdl.controller import Controller
from spikeforge.hdl.protocol import BUFFER_BIT, Op

ENGINES = ("fe", "out", "be", "wue")
LATENCY = {"fe": 5, "out": 3, "be": 7, "wue": 4}


def run(design, ops, pipeline):
    """Issue ``ops`` (START operations, each when the controller accepts a queued step), model
    the engines, and return the log of (cycle, engine, layer, block) starts and of dones."""
    ctl = Controller(design)
    log = {"starts": [], "done": [], "cycles": 0, "wait_ok": set(), "clear": 0}

    async def tb(ctx):
        async def issue(op):
            ctx.set(ctl.start, 1)
            ctx.set(ctl.op, op)
            log["clear"] += ctx.get(ctl.clear)
            await ctx.tick()
            ctx.set(ctl.start, 0)

        await issue(Op.MODE | (BUFFER_BIT if pipeline else 0))
        await issue(Op.CLEAR)
        pending = list(ops)
        due = {}                      # engine -> cycle its done pulse is due
        cycle = 0
        while pending or ctx.get(ctl.busy) or due:
            log["clear"] += ctx.get(ctl.clear)
            # as the driver does: queue a step once its input buffer may be rewritten
            if pending and (ctx.get(ctl.wait_ok) >> bool(pending[0] & BUFFER_BIT)) & 1:
                op = pending.pop(0)
                ctx.set(ctl.start, 1)
                ctx.set(ctl.op, op)
            else:
                ctx.set(ctl.start, 0)
            log["wait_ok"].add(ctx.get(ctl.wait_ok))
            for name in ENGINES:
                port = getattr(ctl, name)
                ctx.set(port.done, due.get(name) == cycle)
                if due.get(name) == cycle:
                    log["done"].append((cycle, name))
                    del due[name]
            for name in ENGINES:
                port = getattr(ctl, name)
                if ctx.get(port.start):
                    assert name not in due, f"{name} started while running"
                    layer = {"fe": ctl.f_layer, "be": ctl.b_layer,
                             "wue": ctl.w_layer}.get(name)
                    entry = (cycle, name, ctx.get(layer) if layer is not None else None,
                             ctx.get(ctl.f_nb) if name == "fe" else None)
                    log["starts"].append(entry)
                    due[name] = cycle + LATENCY[name]
            await ctx.tick()
            cycle += 1
            assert cycle < 20_000, "the controller never went idle"
        log["cycles"] = cycle

    sim = Simulator(ctl)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return log


def overlaps(log):
    """Starts that happened while another engine was running: (cycle, engine, running)."""
    events = sorted([(c, 1, n) for c, n, _, _ in log["starts"]] +
                    [(c, 0, n) for c, n in log["done"]])
    running, found = set(), []
    for cycle, is_start, name in events:
        if not is_start:
            running.discard(name)
            continue
        if running:
            found.append((cycle, name, sorted(running)))
        running.add(name)
    return found


def expected_step(mm):
    """The documented order of one training step's engine runs (pipelining off)."""
    L = mm.L
    order = [("fe", l, nb) for l in range(L) for nb in range(mm.blocks[l])] + [("out", None, None)]
    for l in reversed(range(L)):
        order += [("be", l, None)] + [("wue", l, None)] * mm.blocks[l]
    return order


@pytest.mark.parametrize("layers", [(6, 8, 4), (5, 3), (4, 7, 3, 5)])
def test_sequential_order(layers):
    design = tiny_design(layers=layers)
    mm = design.memmap
    log = run(design, [Op.TRAIN, Op.TRAIN | BUFFER_BIT], pipeline=False)
    got = [(name, layer, nb) for _, name, layer, nb in log["starts"]]
    assert got == expected_step(mm) * 2
    # with pipelining off, each engine runs alone: no start while another engine is running
    assert overlaps(log) == []
    assert log["clear"] == 1


def test_pipelined_dependencies_and_saving():
    design = tiny_design(layers=(6, 8, 4))
    mm = design.memmap
    ops = [Op.TRAIN, Op.TRAIN | BUFFER_BIT, Op.TRAIN]
    piped = run(design, ops, pipeline=True)
    seq = run(design, ops, pipeline=False)
    assert piped["cycles"] < seq["cycles"]
    # the same runs happen, only overlapped
    key = lambda log: sorted((n, l, b) for _, n, l, b in log["starts"])  # noqa: E731
    assert key(piped) == key(seq)
    done_at = {}
    per_step = {}
    for cycle, name in piped["done"]:
        done_at.setdefault(name, []).append(cycle)
    starts = piped["starts"]
    # FE(0, nb) of step n+1 starts only after WUE(0, nb) of step n finished (it chases it)
    fe0 = [(c, nb) for c, n, l, nb in starts if n == "fe" and l == 0]
    wue0 = [c for c, n, l, _ in starts if n == "wue" and l == 0]
    for step in range(1, len(ops)):
        for nb in range(mm.blocks[0]):
            fe_cycle = fe0[step * mm.blocks[0] + nb][0]
            wue_start = wue0[(step - 1) * mm.blocks[0] + nb]
            assert fe_cycle > wue_start + LATENCY["wue"] - 1, (step, nb)
    # BE(l) of step n+1 reads W_l: only after every WUE(l) run of step n finished
    for l in range(mm.L):
        be = [c for c, n, ll, _ in starts if n == "be" and ll == l]
        wue = [c for c, n, ll, _ in starts if n == "wue" and ll == l]
        for step in range(1, len(ops)):
            last_wue = wue[step * mm.blocks[l] - 1]
            assert be[step] >= last_wue + LATENCY["wue"], (l, step)
        per_step[l] = len(be)
    assert per_step == {l: len(ops) for l in range(mm.L)}
    # and engines really overlapped: the WUE of a layer with the BE of the layer below, and the
    # FE of the next step with the update of the last
    found = overlaps(piped)
    assert any(name == "wue" and "be" in running for _, name, running in found), found
    assert any(name == "fe" and "wue" in running for _, name, running in found)


def test_infer_runs_forward_and_output_only():
    design = tiny_design(layers=(6, 8, 4))
    log = run(design, [Op.INFER], pipeline=True)
    assert [n for _, n, _, _ in log["starts"]] == ["fe"] * sum(design.memmap.blocks) + ["out"]
    assert 0b11 in log["wait_ok"] and 0b00 in log["wait_ok"]


def test_sync_is_accepted_and_starts_nothing():
    """There is no weight copy to refresh: SYNC (kept for older hosts) runs no engine."""
    design = tiny_design(layers=(4, 7, 3, 5))
    log = run(design, [Op.SYNC], pipeline=True)
    assert log["starts"] == []
