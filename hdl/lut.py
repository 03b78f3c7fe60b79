"""Subset-sum look-up tables shared by the Forward Engine and the Weight Update Engine.

A group of ``G`` values ``v[0..G-1]`` (G weights of one neuron in the Forward Engine, G ``eps``
values of one neuron in the Weight Update Engine) is turned once into the table of its ``2**G``
subset sums, ``entry[m] = sum(v[s] for s in range(G) if m >> s & 1)``. A G-bit spike pattern then
selects one entry: one look-up replaces up to G additions, and the table is reused for every look-up
that follows (``T x B`` points in the FE, ``n_in`` presynaptic neurons in the WUE).

Hardware trade-off: the table is built **sequentially with one adder per lane**,
``entry[m] = entry[m - 2**s] + v[s]`` with ``s`` the highest set bit of ``m`` (``2**G - 1``
cycles), instead of ``2**G - 1`` parallel adders. The cost is hidden by double buffering: each lane
holds two banks, the engine looks up in one while the next table is built into the other, so the
build is free whenever a table is used for at least ``G + 2**G`` look-ups.

- :class:`SubsetSumLut`: the datapath of one lane (value registers, two banks, one adder, a read mux).
- :class:`LutBuildControl`: the sequencer shared by all lanes of an engine (fetch G values from a
  memory with a one-cycle read latency, then build, then report ``ready``).
"""

from amaranth.hdl import Array, Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.model.fixedpoint import signed_bits, smax, smin

__all__ = ["SubsetSumLut", "LutBuildControl", "LutEngine", "RunControl", "entry_bits", "lut_bank",
           "drive_lut"]

MAX_GROUP = 8


def entry_bits(group, value_bits):
    """Width of a subset sum of ``group`` signed ``value_bits``-wide values (exact)."""
    return signed_bits(group * smin(value_bits), group * smax(value_bits))


def _check_group(group):
    if not isinstance(group, int) or not 1 <= group <= MAX_GROUP:
        raise ValueError(f"group must be an int in 1..{MAX_GROUP}, got {group!r}")


class SubsetSumLut(wiring.Component):
    """One lane: ``G`` value registers and two banks of ``2**G`` subset sums.

    Parameters
    ----------
    group : int
        G, values per table (1..8).
    value_bits : int
        Width of each signed value.

    Members
    -------
    load_en : In(1)
        Store ``load_val`` into value register ``load_idx`` at the clock edge.
    load_idx : In(range(group))
    load_val : In(signed(value_bits))
    build_en : In(1)
        Write ``entry[build_bank][build_idx] = entry[build_bank][build_src] + v[build_step]`` at the
        clock edge (``build_src = build_idx - 2**build_step``). Entry 0 is the constant 0.
    build_idx, build_src : In(group)
    build_step : In(range(group))
    build_bank : In(1)
    sel : In(group)
        Spike pattern selecting the entry (combinational read).
    sel_bank : In(1)
    out : Out(signed(entry_bits(group, value_bits)))
        ``entry[sel_bank][sel]``, combinational.
    """

    def __init__(self, group, value_bits):
        _check_group(group)
        self._group = group
        self._value_bits = value_bits
        self._entry_bits = entry_bits(group, value_bits)
        super().__init__({
            "load_en": In(1),
            "load_idx": In(range(max(group, 2))),
            "load_val": In(signed(value_bits)),
            "build_en": In(1),
            "build_idx": In(group),
            "build_src": In(group),
            "build_step": In(range(max(group, 2))),
            "build_bank": In(1),
            "sel": In(group),
            "sel_bank": In(1),
            "out": Out(signed(self._entry_bits)),
        })

    @property
    def group(self):
        return self._group

    def elaborate(self, platform):
        m = Module()
        G, size = self._group, 1 << self._group
        values = [Signal(signed(self._value_bits), name=f"v{s}") for s in range(G)]
        banks = [[Const(0, signed(self._entry_bits))]
                 + [Signal(signed(self._entry_bits), name=f"b{b}_e{e}") for e in range(1, size)]
                 for b in range(2)]
        flat = Array(banks[0] + banks[1])
        with m.If(self.load_en):
            m.d.sync += Array(values)[self.load_idx].eq(self.load_val)
        src = flat[Cat(self.build_src, self.build_bank)]
        total = src + Array(values)[self.build_step]
        with m.If(self.build_en):
            for b in range(2):
                for e in range(1, size):
                    with m.If((self.build_bank == b) & (self.build_idx == e)):
                        m.d.sync += banks[b][e].eq(total)
        m.d.comb += self.out.eq(flat[Cat(self.sel, self.sel_bank)])
        return m


class LutBuildControl(wiring.Component):
    """Sequencer of a table build, shared by every lane of an engine.

    Cycle behaviour: a ``start`` pulse (accepted when ``busy`` is 0) begins FETCH on the next cycle:
    ``fetch_en`` is 1 for G cycles with ``fetch_idx`` = 0..G-1 (the engine turns it into read
    addresses); each read's data is one cycle later, when ``load_en``/``load_idx`` tell the lanes to
    store it. One cycle after the last load, BUILD drives ``build_*`` for ``2**G - 1`` cycles
    (entries 1, 2, 3, ...). Then ``ready`` is 1 until the next ``start``. The table is thus ready
    ``G + 2**G`` cycles after ``start``. ``build_bank`` is an input: the bank the engine is *not*
    looking up in.

    Members
    -------
    start : In(1)
    busy : Out(1)
    ready : Out(1)
    fetch_en : Out(1)
    fetch_idx : Out(range(group))
    load_en : Out(1)
    load_idx : Out(range(group))
    build_en : Out(1)
    build_idx, build_src : Out(group)
    build_step : Out(range(group))
    """

    def __init__(self, group):
        _check_group(group)
        self._group = group
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "ready": Out(1),
            "fetch_en": Out(1),
            "fetch_idx": Out(range(max(group, 2))),
            "load_en": Out(1),
            "load_idx": Out(range(max(group, 2))),
            "build_en": Out(1),
            "build_idx": Out(group),
            "build_src": Out(group),
            "build_step": Out(range(max(group, 2))),
        })

    def elaborate(self, platform):
        m = Module()
        G = self._group
        m.d.sync += [self.load_en.eq(self.fetch_en), self.load_idx.eq(self.fetch_idx)]
        entry = Signal(G + 1)
        step = Signal(range(max(G, 2) + 1))
        m.d.comb += [
            self.build_idx.eq(entry),
            self.build_step.eq(step),
            self.build_src.eq(entry - (Const(1, G + 1) << step)),
        ]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.fetch_idx.eq(0), self.ready.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [self.busy.eq(1), self.fetch_en.eq(1)]
                m.d.sync += self.fetch_idx.eq(self.fetch_idx + 1)
                with m.If(self.fetch_idx == G - 1):
                    m.next = "WAIT"
            with m.State("WAIT"):
                # the last fetched value is being loaded this cycle
                m.d.comb += self.busy.eq(1)
                m.d.sync += [entry.eq(1), step.eq(0)]
                m.next = "BUILD"
            with m.State("BUILD"):
                m.d.comb += [self.busy.eq(1), self.build_en.eq(1)]
                m.d.sync += entry.eq(entry + 1)
                with m.If((entry + 1) == (Const(1, G + 2) << (step + 1))):
                    m.d.sync += step.eq(step + 1)
                with m.If(entry == (1 << G) - 1):
                    m.d.sync += self.ready.eq(1)
                    m.next = "IDLE"
        return m


def lut_bank(m, group, value_bits, pes):
    """Add one :class:`LutBuildControl` and ``pes`` :class:`SubsetSumLut` to module ``m``
    (submodules ``ctl``, ``lut0`` ...); returns ``(ctl, luts)``."""
    m.submodules.ctl = ctl = LutBuildControl(group)
    luts = []
    for k in range(pes):
        lut = SubsetSumLut(group, value_bits)
        m.submodules[f"lut{k}"] = lut
        luts.append(lut)
    return ctl, luts


def drive_lut(m, lut, ctl, load_val, bank):
    """Connect ``lut`` to the build sequence of ``ctl``: it loads ``load_val`` and builds into
    ``bank`` (the bank not being looked up)."""
    m.d.comb += [
        lut.load_en.eq(ctl.load_en),
        lut.load_idx.eq(ctl.load_idx),
        lut.load_val.eq(load_val),
        lut.build_en.eq(ctl.build_en),
        lut.build_idx.eq(ctl.build_idx),
        lut.build_src.eq(ctl.build_src),
        lut.build_step.eq(ctl.build_step),
        lut.build_bank.eq(bank),
    ]


class RunControl:
    """The run control and task hand-over shared by the LUT engines (see :class:`LutEngine`).

    Signals: ``n_in``/``n_out`` (latched at start), ``running``, ``pending`` (a task is being
    built or is ready), ``bank`` (the bank being looked up; the next table is built into
    ``~bank``), ``lk_active`` (the look-up stage is busy; driven by the engine), ``last_group`` /
    ``last_block`` (the task being built is the last of its block / of the run; driven by the
    engine), ``start_ok`` (a start pulse is accepted this cycle) and ``take`` (the built task
    passes to the look-up stage this cycle).
    """

    def __init__(self, engine):
        self.n_in = Signal.like(engine.n_in)
        self.n_out = Signal.like(engine.n_out)
        self.running = Signal()
        self.pending = Signal()
        self.bank = Signal()
        self.lk_active = Signal()
        self.last_group = Signal()
        self.last_block = Signal()
        self.start_ok = Signal()
        self.take = Signal()


class LutEngine(wiring.Component):
    """Base of the Forward and Weight Update Engines: one layer per run, as tasks
    ``(block, group)``; a task's table is built (:class:`LutBuildControl`) while the previous task
    is looked up, and passes to the look-up stage when both are ready.

    Subclasses call :meth:`run_control` and :meth:`completion` in ``elaborate`` and add their own
    statements under ``rc.start_ok`` (reset the task counters) and ``rc.take`` (advance them).

    Members
    -------
    start : In(1)
        Pulse (while ``busy`` is 0) to run one layer with the current ``n_in``/``n_out``.
    n_in, n_out : In
        Layer dimensions (>= 1), sampled at ``start``.
    busy : Out(1)
        1 from the cycle after ``start`` until the last word is written.
    done : Out(1)
        One-cycle pulse after the run.
    cycles : Out(32)
        Cycles of the last (or current) run, counted while ``busy``.
    """

    def __init__(self, design, group, ports):
        from .design import require_design
        require_design(design)
        _check_group(group)
        self.design, self.cfg, self.hw = design, design.cfg, design.hw
        self.memmap = mm = design.memmap
        self.group = group
        super().__init__({
            "start": In(1),
            "n_in": In(range(mm.n_in_max + 1)),
            "n_out": In(range(mm.n_out_max + 1)),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(32),
            **ports,
        })

    @property
    def pes(self):
        return self.memmap.P

    def run_control(self, m, ctl):
        rc = RunControl(self)
        m.d.comb += [
            rc.take.eq(rc.running & rc.pending & ctl.ready & ~ctl.busy & ~rc.lk_active),
            rc.start_ok.eq(self.start & ~rc.running),
            ctl.start.eq(rc.start_ok | (rc.take & ~(rc.last_group & rc.last_block))),
        ]
        with m.If(rc.start_ok):
            m.d.sync += [rc.n_in.eq(self.n_in), rc.n_out.eq(self.n_out), rc.running.eq(1),
                         rc.pending.eq(1), self.cycles.eq(0)]
        with m.If(rc.take):
            m.d.sync += [rc.bank.eq(~rc.bank), rc.lk_active.eq(1)]
            with m.If(rc.last_group & rc.last_block):
                m.d.sync += rc.pending.eq(0)
        return rc

    def completion(self, m, rc, stages):
        """``busy``, ``cycles`` and the ``done`` pulse once no task and no stage is left."""
        m.d.comb += self.busy.eq(rc.running)
        m.d.sync += self.done.eq(0)
        with m.If(rc.running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(~(rc.pending | rc.lk_active | Cat(*stages).any() | rc.start_ok)):
                m.d.sync += [rc.running.eq(0), self.done.eq(1)]
