"""Hardware parameters of the generated accelerator (what the network config does not fix).

The network and every number format come from :class:`spikeforge.model.config.Config`; this
holds only the micro-architecture: LUT group sizes, processing-element counts, sparsity and
pipelining switches. Engines size their datapaths from both.
"""

from dataclasses import dataclass, replace

__all__ = ["HwParams", "DEFAULT_HW"]


@dataclass(frozen=True)
class HwParams:
    """Micro-architecture of the engines.

    Attributes
    ----------
    fe_group, fe_pes : int
        Forward Engine: inputs fused per LUT look-up (G, 1..6; 1 = plain accumulation) and PEs (P).
    wue_group, wue_pes : int
        Weight Update Engine: points fused per LUT look-up (G) and PEs (P).
    be_pes : int
        Backward Engine: parallel lanes.
    be_sparse : bool
        Backward Engine skips zero eps (input sparsity) and masked outputs (output sparsity).
    pipeline : bool
        Overlap the engines of the top level as their dependencies allow.
    counters : bool
        All event counters of the top (about 30 x 32 bits); off keeps ``active_cycles`` and
        ``steps`` only, for the smallest FPGAs.
    """

    fe_group: int = 4
    fe_pes: int = 8
    wue_group: int = 4
    wue_pes: int = 8
    be_pes: int = 8
    be_sparse: bool = True
    pipeline: bool = True
    counters: bool = True

    def validate(self):
        for name in ("fe_group", "wue_group"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 8:
                raise ValueError(f"{name} must be an int in 1..8, got {value!r}")
        for name in ("fe_pes", "wue_pes", "be_pes"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 256:
                raise ValueError(f"{name} must be an int in 1..256, got {value!r}")
        return self

    def replace(self, **changes):
        return replace(self, **changes).validate()


DEFAULT_HW = HwParams().validate()
