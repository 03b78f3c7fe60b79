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

__all__ = ["HwParams", "HwError", "DEFAULT_HW"]


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
        Forward Engine: inputs fused per LUT look-up (G, 1..8; 1 = plain accumulation).
    wue_group : int
        Weight Update Engine: points fused per LUT look-up (G, 1..8).
    be_sparse : bool
        Backward Engine skips zero eps (input sparsity) and masked outputs (output sparsity).
    pipeline : bool
        Overlap the engines of the top level as their dependencies allow (reset value; the host
        may switch it at run time).
    counters : bool
        All event counters of the top (about 30 x 32 bits); off keeps ``active_cycles`` and
        ``steps`` only, for the smallest FPGAs.
    """

    pes: int = 8
    fe_group: int = 4
    wue_group: int = 4
    be_sparse: bool = True
    pipeline: bool = True
    counters: bool = True

    def validate(self):
        check_field_types(self, HwError)
        for name in ("fe_group", "wue_group"):
            value = getattr(self, name)
            if not 1 <= value <= 8:
                raise HwError(f"{name} must be an int in 1..8, got {value!r}")
        if not 1 <= self.pes <= 256:
            raise HwError(f"pes must be an int in 1..256, got {self.pes!r}")
        return self

    def replace(self, **changes):
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**known_fields(cls, d, HwError, "hardware")).validate()


DEFAULT_HW = HwParams().validate()
