"""The integration kit of a generated accelerator: a machine-readable description and a C header.

:func:`describe` gives, for a design, everything a user's own host or SoC needs to drive
``sf_accelerator.v`` without reading Python: its ports (name, direction, width), clock and reset,
the host protocol's frames and codes (:mod:`spikeforge.hdl.protocol`), the memory targets with
their ids, depths, widths and lane packing, the job registers, the counters and the design key.
:func:`c_header` renders the same description as C ``#define``s; :func:`verilog_header` as the
comment block that heads the generated Verilog. ``spikeforge verilog`` writes all three.
"""

import json

from .design import require_design
from .protocol import (BUFFER_BIT, IDENT_MAGIC, JOB_EPOCHS_MAX, OP_MASK, Ack, Cmd, Err, JobReg,
                       Op, Wait)

__all__ = ["describe", "c_header", "verilog_header", "write_kit", "DESCRIPTION_FORMAT"]

DESCRIPTION_FORMAT = "spikeforge-accelerator-v1"


def _ports(component):
    """``[{name, direction, width}]`` of a component's flattened signature, as the Verilog
    names them (``rx__valid``), plus the clock and reset Amaranth adds."""
    from amaranth.lib.wiring import Out
    ports = [{"name": "clk", "direction": "in", "width": 1},
             {"name": "rst", "direction": "in", "width": 1}]
    for path, member, value in component.signature.flatten(component):
        ports.append({"name": "__".join(str(p) for p in path),
                      "direction": "out" if member.flow == Out else "in",
                      "width": len(value)})
    return ports


def describe(design):
    """The description of ``design``'s accelerator top (a JSON-able dict)."""
    from .top import Accelerator
    mm = require_design(design).memmap
    top = Accelerator(design)
    # only its signature is read: the top and its parts are never elaborated here
    for part in [top, *vars(top).values()]:
        if hasattr(part, "_MustUse__used"):
            part._MustUse__used = True
    cfg, hw = design.cfg, design.hw
    return {
        "format": DESCRIPTION_FORMAT,
        "module": "sf_accelerator",
        "design_key": design.key(),
        "design": design.to_dict(),
        "clock": {"port": "clk", "edge": "rising"},
        "reset": {"port": "rst", "active": "high", "kind": "synchronous",
                  "note": "every register also starts from its init value (Verilog initial "
                          "blocks), so simulation needs no reset pulse"},
        "ports": _ports(top),
        "streams": {
            "rx": "host bytes in: rx__payload[7:0] moves on a rising clk edge where rx__valid "
                  "and rx__ready are both high",
            "tx": "reply bytes out: tx__payload[7:0] moves on a rising clk edge where tx__valid "
                  "and tx__ready are both high",
            "link_error": "pulse from a UART in front: a byte lost or without stop bit (tie 0 "
                          "on a byte stream)",
        },
        "protocol": {
            "document": "hdl/PROTOCOL.md",
            "crc": {"width": 8, "polynomial": "0x07", "init": 0, "reflected": False,
                    "over": "every byte of the frame (or reply) before the CRC byte"},
            "commands": {c.name: int(c) for c in Cmd},
            "ops": {o.name: int(o) for o in Op},
            "op_buffer_bit": BUFFER_BIT, "op_mask": OP_MASK,
            "wait_conditions": {w.name: int(w) for w in Wait},
            "ack": {a.name: int(a) for a in Ack},
            "error_flags": {e.name: int(e) for e in Err},
            "ident_magic": IDENT_MAGIC.decode(),
        },
        "memories": [
            {"id": i, "name": t.name, "depth": t.depth, "width": t.width, "bytes_per_word":
             t.nbytes} for i, t in enumerate(mm.host_targets)],
        "packing": {
            "lanes_per_word": mm.P, "w_bits": cfg.w_bits, "w_frac": cfg.w_frac,
            "weights": "w word nb * n_in + j (from the layer's base) holds W[nb*P + k, j] in "
                       "lane k (bits k*w_bits ..), two's complement, lane 0 lowest",
            "weight_bases": mm.wbase,
            **({"recurrent_layers": list(mm.recurrent),
                "recurrent_weight_bases": {str(l): mm.vbase[l] for l in mm.recurrent},
                "recurrent_weights": "V of recurrent layer l: w word vbase[l] + nb * n_out + k "
                                     "holds V[nb*P + q, k] in lane q"}
               if mm.has_rec else {}),
            "spikes": "x word p = t * B + b (+ buffer * T*B) holds bit i = spike of input i",
            "points_per_step": mm.NP, "timesteps": mm.T, "batch": mm.B,
            "label_stride": mm.label_stride,
            "data_word": {f.name: {"offset": f.offset, "width": f.width}
                          for f in mm.data_word.fields.values()} if mm.has_data else None,
            "value_bits": mm.value_bits if mm.has_data else None,
        },
        "job_registers": {r.name: int(r) for r in JobReg} if mm.has_data else {},
        "job_epochs_max": JOB_EPOCHS_MAX,
        "counters": list(mm.counters),
        "layers": list(cfg.layers),
        "pes": hw.pes,
    }


def _macro(name):
    return "SF_" + "".join(ch if ch.isalnum() else "_" for ch in name).upper()


def c_header(desc):
    """A C header of the description: every code, id, depth, width and base as a ``#define``."""
    lines = ["/* Generated by spikeforge (hdl/describe.py) from the design description; do not",
             f" * edit. Design {desc['design_key']}: {'-'.join(map(str, desc['layers']))}, "
             f"P = {desc['pes']}. */",
             "#ifndef SF_ACCELERATOR_H", "#define SF_ACCELERATOR_H", "",
             f'#define SF_DESIGN_KEY "{desc["design_key"]}"',
             f'#define SF_IDENT_MAGIC "{desc["protocol"]["ident_magic"]}"',
             f"#define SF_CRC8_POLY 0x{int(desc['protocol']['crc']['polynomial'], 16):02X}u", ""]
    p = desc["protocol"]
    for group, prefix in (("commands", "CMD"), ("ops", "OP"), ("wait_conditions", "WAIT"),
                          ("ack", "ACK"), ("error_flags", "ERR")):
        for name, value in p[group].items():
            lines.append(f"#define {_macro(prefix + '_' + name)} {value}u")
        lines.append("")
    lines += [f"#define SF_OP_BUFFER_BIT {p['op_buffer_bit']}u",
              f"#define SF_OP_MASK {p['op_mask']}u", ""]
    for m in desc["memories"]:
        base = _macro("MEM_" + m["name"])
        lines += [f"#define {base}_ID {m['id']}u", f"#define {base}_DEPTH {m['depth']}u",
                  f"#define {base}_WIDTH {m['width']}u",
                  f"#define {base}_BYTES {m['bytes_per_word']}u"]
    lines.append("")
    pk = desc["packing"]
    lines += [f"#define SF_LANES {pk['lanes_per_word']}u", f"#define SF_W_BITS {pk['w_bits']}u",
              f"#define SF_W_FRAC {pk['w_frac']}u", f"#define SF_TIMESTEPS {pk['timesteps']}u",
              f"#define SF_BATCH {pk['batch']}u", f"#define SF_POINTS {pk['points_per_step']}u",
              f"#define SF_LABEL_STRIDE {pk['label_stride']}u",
              f"#define SF_N_LAYERS {len(desc['layers']) - 1}u"]
    for i, n in enumerate(desc["layers"]):
        lines.append(f"#define SF_LAYER{i}_NEURONS {n}u")
    for i, b in enumerate(pk["weight_bases"]):
        lines.append(f"#define SF_W_BASE{i} {b}u")
    lines.append("")
    for name, value in desc["job_registers"].items():
        lines.append(f"#define {_macro('JOB_' + name)} {value}u")
    lines.append(f"#define SF_N_COUNTERS {len(desc['counters'])}u")
    for i, name in enumerate(desc["counters"]):
        lines.append(f"#define {_macro('COUNTER_' + name)} {i}u")
    lines += ["", "#endif /* SF_ACCELERATOR_H */", ""]
    return "\n".join(lines)


def verilog_header(desc):
    """The comment block that heads ``sf_accelerator.v``: ports, clock, reset and the protocol."""
    lines = [f"// sf_accelerator: spikeforge training accelerator, design {desc['design_key']} "
             f"({'-'.join(map(str, desc['layers']))}, P = {desc['pes']})",
             "// Clock: clk, rising edge. Reset: rst, active high, synchronous (registers also "
             "start from their init values).",
             "// Ports:"]
    for port in desc["ports"]:
        lines.append(f"//   {port['direction']:<3} [{port['width'] - 1}:0] {port['name']}")
    lines += ["// Host protocol (hdl/PROTOCOL.md): byte frames on rx, one reply per frame on tx, "
              "a CRC-8 (poly 0x07) on each;",
              "//   commands " + ", ".join(f"{k}={v}" for k, v in
                                          desc["protocol"]["commands"].items()) + ";",
              "//   memories " + ", ".join(f"{m['id']}:{m['name']}[{m['depth']}x{m['width']}]"
                                          for m in desc["memories"]) + ".",
              "// Machine-readable: sf_accelerator.json; C: sf_accelerator.h.", ""]
    return "\n".join(lines)


def write_kit(design, directory):
    """Write ``sf_accelerator.json`` and ``sf_accelerator.h`` into ``directory``; return paths."""
    import os

    from spikeforge.model.atomic import atomic_write_text
    desc = describe(design)
    jpath = os.path.join(directory, "sf_accelerator.json")
    hpath = os.path.join(directory, "sf_accelerator.h")
    atomic_write_text(jpath, json.dumps(desc, indent=2) + "\n")
    atomic_write_text(hpath, c_header(desc))
    return [jpath, hpath]
