"""One design: the network config and the hardware parameters, validated together, with one identity.

Every part of spikeforge that builds or drives hardware takes a :class:`Design`: the engines and
the top (``hdl/``), the host driver and the harnesses (``sim/``), the board flows (``fpga/``) and
the reports. Its :attr:`Design.memmap` (:mod:`spikeforge.hdl.memmap`) holds every memory size,
base address and field width; :meth:`Design.key` names it (build folders, the IDENT reply of a
bitstream, checkpoints); :meth:`Design.to_json` / :meth:`Design.from_json` carry it between
processes (cocotb testbenches, ``synth.json``).

Pure Python: importing this module imports no Amaranth.
"""

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass

from spikeforge.model.config import Config, ConfigError

from .params import HwParams

__all__ = ["Design", "DesignError", "KEY_BYTES", "require_design", "rtl_revision"]

class DesignError(ConfigError):
    """A (config, hardware) pair the accelerator cannot realise; the message says what to change."""


#: bytes of the design key (the IDENT reply carries them)
KEY_BYTES = 8
#: version of the JSON form; a design of another version is refused, never misread
_FORMAT = 1


@dataclass(frozen=True)
class Design:
    """A validated ``(cfg, hw)`` pair.

    Parameters
    ----------
    cfg : Config
    hw : HwParams
    """

    cfg: Config
    hw: HwParams

    def __post_init__(self):
        if not isinstance(self.cfg, Config):
            raise TypeError(f"cfg must be a Config, got {type(self.cfg).__name__}")
        if not isinstance(self.hw, HwParams):
            raise TypeError(f"hw must be HwParams, got {type(self.hw).__name__}")
        self.cfg.validate()
        self.hw.validate()
        if self.cfg.layers[-1] > 255:
            raise DesignError(f"at most 255 output classes (8-bit labels), got "
                              f"{self.cfg.layers[-1]}; shrink the last layer")
        if self.cfg.n_layers - 1 in self.cfg.recurrent:
            raise DesignError(f"the accelerator runs recurrent hidden layers only; layer "
                              f"{self.cfg.n_layers - 1} is the output layer: drop it from "
                              f"recurrent or train with --engine golden")
        if self.cfg.w_levels or self.cfg.fan_in:
            raise DesignError("train-and-constrain (w_levels, fan_in) trains in the golden "
                              "model (--engine golden); the accelerator runs the constrained "
                              "weights it gives as ordinary ones")
        if self.cfg.act_active:
            raise DesignError("the accelerator's backward pass has no activity regulariser; "
                              "train with it by hardware in the loop (--engine hil: the forward "
                              "pass on the accelerator, the golden backward pass) or --engine "
                              "golden")

    @staticmethod
    def forward_only(cfg):
        """``cfg`` without what only the backward pass uses and the accelerator lacks (the
        activity regulariser): the config of the hardware that runs a HIL forward pass."""
        return dataclasses.replace(cfg, act_upper=0.0, act_max=0, act_lower=0.0, act_min=0,
                                   act_pop_upper=0.0, act_pop_max=0)

    # ---- derived ----------------------------------------------------------------------------

    @functools.cached_property
    def memmap(self):
        """The :class:`~spikeforge.hdl.memmap.MemoryMap` of this design."""
        from .memmap import MemoryMap
        return MemoryMap(self)

    def replace(self, cfg=None, hw=None, **changes):
        """A new design; ``changes`` name Config or HwParams fields."""
        cfg, hw = cfg or self.cfg, hw or self.hw
        cfg_fields = set(Config.__dataclass_fields__)
        cfg_changes = {k: v for k, v in changes.items() if k in cfg_fields}
        hw_changes = {k: v for k, v in changes.items() if k not in cfg_fields}
        return Design(cfg.replace(**cfg_changes) if cfg_changes else cfg,
                      hw.replace(**hw_changes) if hw_changes else hw)

    # ---- identity and serialisation -----------------------------------------------------------

    def to_dict(self):
        return {"format": _FORMAT, "config": self.cfg.to_dict(), "hw": self.hw.to_dict()}

    def to_json(self):
        """Canonical JSON (sorted keys, no spaces): equal designs give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise DesignError(f"not a spikeforge design description (format {_FORMAT}): {d!r}")
        try:
            return cls(Config.from_dict(d["config"]), HwParams.from_dict(d["hw"]))
        except (KeyError, TypeError) as exc:
            raise DesignError(f"malformed design description ({exc})") from None

    @classmethod
    def from_json(cls, text):
        try:
            d = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise DesignError(f"a design description must be JSON ({exc})") from None
        return cls.from_dict(d)

    def key(self):
        """A stable name of the design: ``2 * KEY_BYTES`` hex digits of SHA-256 of its JSON."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:2 * KEY_BYTES]

    def key_bytes(self):
        return bytes.fromhex(self.key())

    def __str__(self):
        layers = "-".join(map(str, self.cfg.layers))
        return (f"{layers} T={self.cfg.timesteps} B={self.cfg.batch} P={self.hw.pes} "
                f"(design {self.key()})")



def require_design(design):
    """``design`` if it is a :class:`Design`, else a ``TypeError`` naming what was passed."""
    if not isinstance(design, Design):
        raise TypeError(f"design must be a Design, got {type(design).__name__}")
    return design


def rtl_revision(design):
    """A 16-hex-digit digest of the RTL a board build of ``design`` is made of: the generated
    Verilog of the accelerator behind its UART (:class:`~spikeforge.hdl.board.UartCore`, without
    source locations, so comments and docstrings do not count) and the text of ``hdl/pll.py``
    (the board's clock, generated per board). Two builds of one design from different RTL differ
    here though their design keys agree."""
    return _rtl_digest(design.to_json())


@functools.lru_cache(maxsize=16)
def _rtl_digest(design_json):
    import os

    from amaranth.back import verilog

    from .board import UartCore
    from .top import Accelerator
    core = UartCore(Accelerator(Design.from_json(design_json)), 4)
    text = verilog.convert(core, name="top", ports=[core.rx, core.tx], emit_src=False)
    h = hashlib.sha256(text.encode())
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pll.py"), "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]
