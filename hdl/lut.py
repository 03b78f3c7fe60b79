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

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.model.fixedpoint import signed_bits, smax, smin

from spikeforge.hdl.params import MAX_GROUP as _MAX_GROUP

__all__ = ["SubsetSumLut", "LutBuildControl", "LutEngine", "RunControl", "entry_bits", "lut_bank",
           "drive_lut", "build_order", "lane_addresses", "lane_depth", "lane_invert",
           "lane_selects"]

MAX_GROUP = _MAX_GROUP["lut"]


def entry_bits(group, value_bits):
    """Width of a subset sum of ``group`` signed ``value_bits``-wide values (exact)."""
    return signed_bits(group * smin(value_bits), group * smax(value_bits))


def _check_group(group, table="lut"):
    top = _MAX_GROUP[table]
    if not isinstance(group, int) or not 1 <= group <= top:
        raise ValueError(f"group must be an int in 1..{top} with table={table!r}, got {group!r}")


def _gray(n):
    return n ^ (n >> 1)


def build_order(group):
    """The build sequence of a table: ``[(entry, step, add)]`` for ``n = 1 .. 2**G - 1``, entries
    in Gray-code order. Entry ``gray(n)`` differs from the entry before it in value ``step``:
    ``entry[gray(n)] = entry[gray(n-1)] + v[step]`` if ``add`` else ``- v[step]``, so the build
    needs only a running sum, never a read of the table."""
    order = []
    for n in range(1, 1 << group):
        g = _gray(n)
        step = (g ^ _gray(n - 1)).bit_length() - 1
        order.append((g, step, (g >> step) & 1))
    return order


class SubsetSumLut(wiring.Component):
    """One lane: ``G`` value registers and two banks of ``2**G`` subset sums.

    Parameters
    ----------
    group : int
        G, values per table (1..8; adder trees 1..16).
    value_bits : int
        Width of each signed value.
    table : str
        ``"lut"``: the ``2**G`` subset sums in a two-bank memory with an asynchronous read
        (distributed RAM on the ECP5: ``TRELLIS_DPR16X4``), built by a running sum in Gray-code
        order (one adder/subtractor, no read of the table while building). ``"tree"``: two banks of
        the ``G`` values and a masked adder tree; ``build_*`` are ignored (nothing to build).
    invert : int
        ``0 <= invert < 2**(G + 1)``: ``Cat(sel, sel_bank)`` arrives XORed with this constant and
        the lane undoes it for free (``"tree"``: the inverted mask is another LUT function;
        ``"lut"``: the table is stored at the XORed addresses). It lets each lane have its own
        register copy of the look-up pattern (:func:`lane_selects`) that synthesis cannot merge.

    Members
    -------
    load_en : In(1)
        Store ``load_val`` into value register ``load_idx`` at the clock edge (``"tree"``: of bank
        ``build_bank``).
    load_idx : In(range(group))
    load_val : In(signed(value_bits))
    build_en : In(1)
        Write entry ``build_idx`` of bank ``build_bank`` at the clock edge: 0 with ``build_zero``
        (entry 0; resets the running sum), else the running sum ``+ v[build_step]`` (``build_add``)
        or ``- v[build_step]``, which becomes the new running sum.
    build_zero, build_add : In(1)
    build_idx : In(group)
    build_step : In(range(group))
    build_bank : In(1)
    sel : In(group)
        Spike pattern selecting the entry (combinational read), XORed with ``invert``.
    sel_bank : In(1)
        The bank looked up, XORed with bit G of ``invert``.
    out : Out(signed(entry_bits(group, value_bits)))
        ``entry[sel_bank][sel]`` (after undoing ``invert``), combinational.
    """

    def __init__(self, group, value_bits, table="lut", invert=0):
        if table not in ("lut", "tree"):
            raise ValueError(f"table must be 'lut' or 'tree', got {table!r}")
        _check_group(group, table)
        if not isinstance(invert, int) or not 0 <= invert < 2 << group:
            raise ValueError(f"invert must be an int in 0..{(2 << group) - 1}, got {invert!r}")
        self._invert = invert
        self._group = group
        self._value_bits = value_bits
        self._entry_bits = entry_bits(group, value_bits)
        self._table = table
        super().__init__({
            "load_en": In(1),
            "load_idx": In(range(max(group, 2))),
            "load_val": In(signed(value_bits)),
            "build_en": In(1),
            "build_zero": In(1),
            "build_add": In(1),
            "build_idx": In(group),
            "build_step": In(range(max(group, 2))),
            "build_bank": In(1),
            "sel": In(group),
            "sel_bank": In(1),
            "out": Out(signed(self._entry_bits)),
        })

    @property
    def group(self):
        return self._group

    @property
    def invert(self):
        return self._invert

    def elaborate(self, platform):
        m = Module()
        G, E = self._group, self._entry_bits
        if self._table == "tree":
            banks = [[Signal(signed(self._value_bits), name=f"b{b}_v{s}") for s in range(G)]
                     for b in range(2)]
            with m.If(self.load_en):
                for b in range(2):
                    with m.If(self.build_bank == b):
                        m.d.sync += Array(banks[b])[self.load_idx].eq(self.load_val)
            inv = [(self._invert >> s) & 1 for s in range(G + 1)]
            hi, lo = (0, 1) if inv[G] else (1, 0)
            terms = [Mux(self.sel[s], 0, Mux(self.sel_bank, banks[hi][s], banks[lo][s]))
                     if inv[s] else
                     Mux(self.sel[s], Mux(self.sel_bank, banks[hi][s], banks[lo][s]), 0)
                     for s in range(G)]
            while len(terms) > 1:           # balanced tree: ceil(log2 G) adder levels
                terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                         for i in range(0, len(terms), 2)]
            m.d.comb += self.out.eq(terms[0])
            return m
        values = [Signal(signed(self._value_bits), name=f"v{s}") for s in range(G)]
        with m.If(self.load_en):
            m.d.sync += Array(values)[self.load_idx].eq(self.load_val)
        m.submodules.table = table = Memory(shape=signed(E), depth=2 << G, init=[])
        wr = table.write_port()
        rd = table.read_port(domain="comb")
        running = Signal(signed(E))
        v = Array(values)[self.build_step]
        new = Signal(signed(E))
        m.d.comb += new.eq(Mux(self.build_zero, 0,
                               Mux(self.build_add, running + v, running - v)))
        m.d.comb += [wr.addr.eq(Cat(self.build_idx, self.build_bank) ^ self._invert),
                     wr.data.eq(new),
                     wr.en.eq(self.build_en)]
        with m.If(self.build_en):
            m.d.sync += running.eq(new)
        m.d.comb += [rd.addr.eq(Cat(self.sel, self.sel_bank)), self.out.eq(rd.data)]
        return m


class LutBuildControl(wiring.Component):
    """Sequencer of a table build, shared by every lane of an engine.

    Cycle behaviour: a ``start`` pulse (accepted when ``busy`` is 0) begins FETCH on the next cycle:
    ``fetch_en`` is 1 for G cycles with ``fetch_idx`` = 0..G-1 (the engine turns it into read
    addresses); each read's data is ``latency`` cycles later, when ``load_en``/``load_idx`` tell
    the lanes to store it. Then (``table="lut"``) BUILD writes entry 0 and the ``2**G - 1`` entries
    of :func:`build_order` (``build_*``, one per cycle, every output a register). Then ``ready`` is
    1 until the next ``start``. The table is thus ready ``G + latency + 2**G`` cycles after
    ``start`` (``"tree"``: ``G + latency``, nothing to build). ``build_bank`` is an input of
    the lanes: the bank the engine is *not* looking up in. While ``stall`` is 1 (another user
    holds the memory port the values come from), FETCH waits: ``fetch_en`` is 0 and ``fetch_idx``
    holds; each stalled cycle delays ``ready`` by one.

    Members
    -------
    start : In(1)
    stall : In(1)
    busy : Out(1)
    ready : Out(1)
    fetch_en : Out(1)
    fetch_idx : Out(range(group))
    load_en : Out(1)
    load_idx : Out(range(group))
    build_en, build_zero, build_add : Out(1)
    build_idx : Out(group)
    build_step : Out(range(group))
    """

    def __init__(self, group, table="lut", latency=1):
        _check_group(group, table)
        self._group = group
        self._table = table
        self._latency = latency
        super().__init__({
            "start": In(1),
            "stall": In(1),
            "busy": Out(1),
            "ready": Out(1),
            "fetch_en": Out(1),
            "fetch_idx": Out(range(max(group, 2))),
            "load_en": Out(1),
            "load_idx": Out(range(max(group, 2))),
            "build_en": Out(1),
            "build_zero": Out(1),
            "build_add": Out(1),
            "build_idx": Out(group),
            "build_step": Out(range(max(group, 2))),
        })

    def elaborate(self, platform):
        m = Module()
        G = self._group
        en, idx = self.fetch_en, self.fetch_idx
        for i in range(self._latency):
            d_en, d_idx = Signal(name=f"ld_en{i}"), Signal.like(idx, name=f"ld_idx{i}")
            m.d.sync += [d_en.eq(en), d_idx.eq(idx)]
            en, idx = d_en, d_idx
        m.d.comb += [self.load_en.eq(en), self.load_idx.eq(idx)]
        drain = Signal(range(self._latency + 1))
        # adder trees build nothing: no ROM for G > 8 (the dead one of G <= 8, which yosys removes,
        # stays so that the RTL revisions of the adopted builds stay valid)
        if self._table != "tree" or G <= MAX_GROUP:
            order = build_order(G)
            n = Signal(range(1 << G))
            rom = Array(Const((g << 8) | (step << 1) | add, G + 8) for g, step, add in order)
            nxt = Signal(G + 8)
            m.d.comb += nxt.eq(rom[n])
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.fetch_idx.eq(0), self.ready.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [self.busy.eq(1), self.fetch_en.eq(~self.stall)]
                with m.If(~self.stall):
                    m.d.sync += self.fetch_idx.eq(self.fetch_idx + 1)
                    with m.If(self.fetch_idx == G - 1):
                        m.d.sync += drain.eq(self._latency - 1)
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                # the last fetched values are being loaded
                m.d.comb += self.busy.eq(1)
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    if self._table == "tree":
                        m.d.sync += self.ready.eq(1)
                        m.next = "IDLE"
                    else:
                        m.d.sync += [self.build_en.eq(1), self.build_zero.eq(1),
                                     self.build_idx.eq(0), n.eq(0)]
                        m.next = "BUILD"
            if self._table != "tree":
                with m.State("BUILD"):
                    m.d.comb += self.busy.eq(1)
                    # registered build outputs: entry n + 1 of the order is driven next cycle
                    m.d.sync += [self.build_zero.eq(0), self.build_idx.eq(nxt[8:]),
                                 self.build_step.eq(nxt[1:8]), self.build_add.eq(nxt[0]),
                                 n.eq(n + 1)]
                    with m.If(n == (1 << G) - 1):
                        m.d.sync += [self.build_en.eq(0), self.ready.eq(1)]
                        m.next = "IDLE"
        return m


def lut_bank(m, group, value_bits, pes, table="lut", latency=1):
    """Add one :class:`LutBuildControl` and ``pes`` :class:`SubsetSumLut` to module ``m``
    (submodules ``ctl``, ``lut0`` ...); returns ``(ctl, luts)``."""
    m.submodules.ctl = ctl = LutBuildControl(group, table, latency)
    luts = []
    for k in range(pes):
        lut = SubsetSumLut(group, value_bits, table, invert=lane_invert(k, group))
        m.submodules[f"lut{k}"] = lut
        luts.append(lut)
    return ctl, luts


def lane_invert(k, group):
    """The ``invert`` constant of lane ``k`` of a bank of G-entry tables: distinct for the first
    ``2**(G + 1)`` lanes, so their copies of the look-up pattern are distinct registers."""
    return k % (2 << group)


def lane_selects(m, luts, pattern, bank, enable, name):
    """One register copy per lane of the look-up ``pattern`` (G bits) and ``bank``, loaded when
    ``enable``, driving each lane's ``sel``/``sel_bank`` a cycle later.

    One pattern register fanning out to every lane's masked adder tree is a net that spans the
    engine (at P = 16, G = 16 on the ULX3S about 22 ns of routing); a copy per lane sits beside its
    lane. Each copy holds the value XORed with its lane's ``invert`` (undone inside the lane at no
    cost), so synthesis cannot merge the copies."""
    for k, lut in enumerate(luts):
        copy = Signal(lut.group + 1, name=f"{name}{k}")
        with m.If(enable):
            m.d.sync += copy.eq(Cat(pattern, bank) ^ lut.invert)
        m.d.comb += [lut.sel.eq(copy[:lut.group]), lut.sel_bank.eq(copy[lut.group])]


def drive_lut(m, lut, ctl, load_val, bank):
    """Connect ``lut`` to the build sequence of ``ctl``: it loads ``load_val`` and builds into
    ``bank`` (the bank not being looked up)."""
    m.d.comb += [
        lut.load_en.eq(ctl.load_en),
        lut.load_idx.eq(ctl.load_idx),
        lut.load_val.eq(load_val),
        lut.build_en.eq(ctl.build_en),
        lut.build_zero.eq(ctl.build_zero),
        lut.build_add.eq(ctl.build_add),
        lut.build_idx.eq(ctl.build_idx),
        lut.build_step.eq(ctl.build_step),
        lut.build_bank.eq(bank),
    ]


#: lanes whose copies of an address differ (in the low 4 bits): a DPR16X4 is 16 words deep
LANE_SPREAD = 16


def lane_depth(depth):
    """The depth of a per-lane distributed RAM addressed by :func:`lane_addresses`: ``depth``
    rounded up to a multiple of ``LANE_SPREAD`` (what a 16-word distributed RAM holds anyway)."""
    return -(-max(depth, 1) // LANE_SPREAD) * LANE_SPREAD


def lane_addresses(m, value, enable, lanes, depth, name):
    """One registered copy of the address ``value`` (``< depth``) per lane, loaded when
    ``enable``, for the lanes' own distributed RAMs (each read and written at its copy).

    One address register fanning out to the RAMs of every lane is a net that spans the engine
    (at G = 16 on the ULX3S it took 13.5 ns of routing); a copy per lane is placed next to its
    RAM. Identical registers would be merged by synthesis, so lane ``k``'s copy holds
    ``value ^ (k % LANE_SPREAD)``: its RAM stores word ``j`` at ``j ^ (k % 16)``, a permutation
    within the :func:`lane_depth` words that nothing outside the RAM sees."""
    size = lane_depth(depth)
    copies = []
    for k in range(lanes):
        copy = Signal(range(size), name=f"{name}{k}")
        with m.If(enable):
            m.d.sync += copy.eq(value ^ (k % LANE_SPREAD))
        copies.append(copy)
    return copies


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
        _check_group(group, design.hw.table)
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

    def run_control(self, m, ctl, hold=None):
        """``hold``: a signal that keeps the built task from passing to the look-ups (the
        Forward Engine's recurrent runs wait there for the previous step's spikes)."""
        rc = RunControl(self)
        take = rc.running & rc.pending & ctl.ready & ~ctl.busy & ~rc.lk_active
        m.d.comb += [
            rc.take.eq(take if hold is None else take & ~hold),
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
