"""Hardware parameters of the generated accelerator (what the network config does not fix).

The network and every number format come from :class:`spikeforge.model.config.Config`; this
holds only the micro-architecture: the PE count, LUT group sizes, sparsity and pipelining
switches. Pure Python (no Amaranth): :class:`spikeforge.hdl.design.Design` pairs it with a Config.

One PE count ``pes`` serves every engine: the Forward Engine, the Weight Update Engine and the
Backward Engine share the memory words of the accelerator (``pes`` lanes per word), so a
per-engine count could not be realised by the top.
"""

import dataclasses
from dataclasses import dataclass

from spikeforge.model.config import ConfigError, check_field_types, known_fields

__all__ = ["HwParams", "HwError", "DEFAULT_HW", "RECURRENT_HW", "TABLES", "default_hw"]


class HwError(ConfigError):
    """Hardware parameters that cannot be realised; the message says what to change."""


@dataclass(frozen=True)
class HwParams:
    """Micro-architecture of the engines.

    Attributes
    ----------
    pes : int
        Processing elements (lanes) of every engine: ``P`` neurons per memory word (1..256).
    fe_group : int
        Forward Engine: inputs fused per LUT look-up (G, 1..8; 1 = plain accumulation; 1..16
        with ``table="tree"``, which has no ``2**G`` table).
    wue_group : int
        Weight Update Engine: points fused per LUT look-up (G, 1..8; 1..16 with adder trees).
    be_sparse : bool
        Backward Engine skips zero eps (input sparsity) and masked outputs (output sparsity).
    pipeline : bool
        Overlap the engines of the top level as their dependencies allow (reset value; the host
        may switch it at run time).
    counters : bool
        All event counters of the top (about 30 x 32 bits); off keeps ``active_cycles`` and
        ``steps`` only, for the smallest FPGAs.
    table : str
        How the Forward and Weight Update Engines sum a G-input group (:mod:`spikeforge.hdl.lut`):
        ``"lut"``, H2Learn's subset-sum look-up table (``2**G`` entries per bank, built once and
        reused; held in a memory with an asynchronous read, which is distributed RAM on the ECP5
        and flip-flops on the iCE40), or ``"tree"``, a masked adder tree over the G values (no
        table to build, ``G - 1`` adders per lane). Both give identical sums.
    dist_ram : bool
        Small buffers (the Backward Engine's compressed-eps lists, the Forward Engine's partial
        sums) in distributed RAM with an asynchronous read, off the block RAM and out of the
        critical paths; off for families without distributed RAM (iCE40), where they stay in
        block RAM.
    data_samples : int
        Capacity of the on-chip data set in samples (0: none, the host streams spikes). With a
        data set the accelerator holds the samples' intensities and labels, a rate encoder
        (``model/encode.py``) and a training job that runs epochs without the host
        (:mod:`spikeforge.hdl.job`).
    data_vmax : int
        Largest intensity of the on-chip data set (the rate code's ``vmax``; 16 for digits).
    encoder : str
        The on-chip data set's spike encoder (``model/encode.py``; only with ``data_samples``):
        ``"rate"`` (default, the deterministic rate code) or ``"latency"`` (time to first
        spike); both are a constant table of ``T * 2**value_bits`` bits, so they cost the same.
        A Bernoulli code would need an LFSR specified in model/SPEC.md and is not offered.
    dist_spill : bool
        Spill to distributed RAM what would waste block RAM: the tail of a memory whose depth
        just passes a power of two (``eps``, ``g`` and ``u``: the hidden blocks fill 512 words,
        the output block adds 64) beside a block RAM of the power-of-two depth, and whole
        memories of at most 256 words and 8 Kbit (``x``, ``hb``, ``acc``), each of which would
        otherwise hold a block RAM per 36 bits of width (:func:`spikeforge.hdl.memmap.
        tail_split`, :func:`~spikeforge.hdl.memmap.spills_whole`; the same one-cycle reads).
        Needs ``dist_ram``; off by default (every earlier design keeps its Verilog).
    learn : bool
        The training accelerator (default). ``False``: an inference-only accelerator, the
        Forward Engine and output unit without the Backward and Weight Update Engines and their
        memories, far smaller; it refuses TRAIN, and it still trains as the forward pass of
        hardware-in-the-loop training (``spikeforge train --engine hil``), which reads its state
        back.
    """

    pes: int = 8
    fe_group: int = 4
    wue_group: int = 4
    be_sparse: bool = True
    pipeline: bool = True
    counters: bool = True
    table: str = "lut"
    dist_ram: bool = True
    data_samples: int = 0
    data_vmax: int = 16
    learn: bool = True
    encoder: str = "rate"
    dist_spill: bool = False

    def validate(self):
        check_field_types(self, HwError)
        if not self.learn and self.data_samples:
            raise HwError("an inference-only design (learn=false) has no training job; set "
                          "data_samples=0")
        if self.encoder not in ONCHIP_ENCODERS:
            raise HwError(f"encoder must be one of {', '.join(ONCHIP_ENCODERS)} (the on-chip "
                          f"encoders are deterministic), got {self.encoder!r}")
        if self.encoder != "rate" and not self.data_samples:
            raise HwError(f"encoder={self.encoder} codes the on-chip data set; set data_samples "
                          f"(the host-streamed input takes any code: train --encoder)")
        if self.dist_spill and not self.dist_ram:
            raise HwError("dist_spill moves memories into distributed RAM; set dist_ram=true "
                          "(a family with distributed RAM) or dist_spill=false")
        if self.table not in TABLES:
            raise HwError(f"table must be one of {', '.join(TABLES)}, got {self.table!r}")
        top = MAX_GROUP[self.table]
        for name in ("fe_group", "wue_group"):
            value = getattr(self, name)
            if not 1 <= value <= top:
                hint = f" (or table=tree, up to {MAX_GROUP['tree']})" if self.table == "lut" \
                    else ""
                raise HwError(f"{name} must be an int in 1..{top} with table={self.table}"
                              f"{hint}, got {value!r}")
        if not 0 <= self.data_samples <= 65535:
            raise HwError(f"data_samples must be an int in 0..65535, got {self.data_samples!r}")
        if not 1 <= self.data_vmax <= 255:
            raise HwError(f"data_vmax must be an int in 1..255, got {self.data_vmax!r}")
        if not 1 <= self.pes <= 256:
            raise HwError(f"pes must be an int in 1..256, got {self.pes!r}")
        return self

    def replace(self, **changes):
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self):
        """The fields; those added after the first description format only when they differ
        from their default, so every earlier design keeps its description and key."""
        d = dataclasses.asdict(self)
        for name, default in LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**known_fields(cls, d, HwError, "hardware")).validate()


TABLES = ("lut", "tree")
#: the largest group per table kind (as ``hdl/lut.py``: a LUT holds ``2**G`` entries)
MAX_GROUP = {"lut": 8, "tree": 16}
ONCHIP_ENCODERS = ("rate", "latency")
LATER_FIELDS = {"learn": True, "encoder": "rate", "dist_spill": False}

DEFAULT_HW = HwParams().validate()
#: the default of a network with recurrent layers: its recurrent runs build a table per time
#: step for only B look-ups, so they sum groups of 8 in adder trees (no table to build), with
#: 16 PEs. digits_rows (8-256-10, T = 16, B = 8): 260,611 cycles per training step (FE 97,118,
#: BE 89,939, WUE 73,150 busy), measured on its first two training batches under Verilator
RECURRENT_HW = DEFAULT_HW.replace(pes=16, table="tree", fe_group=8, wue_group=8)


def default_hw(cfg):
    """The hardware parameters a network ``cfg`` is built with unless told otherwise."""
    return RECURRENT_HW if cfg.recurrent else DEFAULT_HW
