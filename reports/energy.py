"""Energy per training sample from event counts measured in RTL simulation.

Per-event energies are Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, 0.9 V:

- integer add: 0.03 pJ (8 bit), 0.05 pJ (16 bit), 0.1 pJ (32 bit), linear in width between and
  beyond those points;
- integer multiply: 0.2 pJ (8 bit), 3.1 pJ (32 bit), scaled as the square of the width
  (``0.2 * (w/8)^2``, 0.8 pJ at 16 bit);
- SRAM: 10 pJ (8 KB), 20 pJ (32 KB), 100 pJ (1 MB) per 64-bit access, interpolated log-log in the
  memory size and scaled linearly in the word width.

- register write: no Horowitz figure; SATA_Sim's unit energies put a 16-bit register write at
  0.0301 / 0.00967 = 3.1 times a 16-bit add, so 3.1 x 0.05 pJ / 16 = 0.0097 pJ per bit written.

Other nodes: dynamic energy ``C V^2`` with ``C`` proportional to the feature size, so
``E(node, V) = E45 * (node / 45) * (V / 0.9)^2`` (a first-order rule; leakage is not modelled).

Events come from the accelerator's counters (``hdl/top.py``), read after training steps in RTL
simulation (``spikeforge bench top``): each counter counts memory-port accesses or lane operations
of one engine. How each counter is priced is in :func:`energy_breakdown`.
"""

import math

__all__ = ["add_pj", "mul_pj", "sram_pj", "register_pj", "energy_breakdown", "scale_energy",
           "fpga_energy", "SOURCE", "FPGA_SOURCE", "FPGA_ASIC_DYNAMIC_RATIO"]

SOURCE = "Horowitz, ISSCC 2014, 45 nm, 0.9 V"
REGISTER_PER_ADD16 = 0.0301 / 0.00967        # SATA_Sim: 16-bit register write / 16-bit add


def add_pj(width):
    return 0.05 * width / 16 if width <= 16 else 0.05 + (0.1 - 0.05) * (width - 16) / 16


def mul_pj(width):
    return 0.2 * (width / 8) ** 2


def sram_pj(size_bytes, width_bits):
    """Energy of one access of ``width_bits`` to an SRAM of ``size_bytes``."""
    points = [(8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0)]
    x = math.log(max(size_bytes, 1))
    if size_bytes <= points[1][0]:
        (s0, e0), (s1, e1) = points[0], points[1]
    else:
        (s0, e0), (s1, e1) = points[1], points[2]
    slope = (math.log(e1) - math.log(e0)) / (math.log(s1) - math.log(s0))
    e64 = math.exp(math.log(e0) + slope * (x - math.log(s0)))
    return e64 * width_bits / 64


def register_pj(bits):
    """Energy of writing ``bits`` flip-flops (see the module docstring)."""
    return REGISTER_PER_ADD16 * add_pj(16) * bits / 16


def scale_energy(pj, node_nm, volts=0.9):
    return pj * (node_nm / 45.0) * (volts / 0.9) ** 2


# No open power estimator exists for the ECP5 (nor a sourced per-resource energy table here), so
# the FPGA figure rests on the event-count energy above, moved to the ECP5's 40 nm node at its
# 1.1 V core, times the measured FPGA/ASIC gap in dynamic power
FPGA_ASIC_DYNAMIC_RATIO = 14.0
FPGA_SOURCE = ("Kuon & Rose, IEEE TCAD 26(2), 2007: an FPGA's dynamic power is about 14x a "
               "standard-cell ASIC's for the same logic")
ECP5_NODE_NM, ECP5_CORE_V = 40, 1.1


def fpga_energy(counters, design, samples, samples_per_s):
    """An estimate of the dynamic energy per training sample and power of ``design`` on an
    ECP5: :func:`energy_breakdown`'s total at 40 nm / 1.1 V (:func:`scale_energy`) times
    :data:`FPGA_ASIC_DYNAMIC_RATIO`. Leaves out static power and whatever the counters do not
    count (the clock tree, idle toggling, the UART), so it is a partial figure, labelled so."""
    asic = energy_breakdown(counters, design, samples)["total_pj_per_sample"]
    pj = scale_energy(asic, ECP5_NODE_NM, ECP5_CORE_V) * FPGA_ASIC_DYNAMIC_RATIO
    return {"asic_45nm_pj_per_sample": asic, "fpga_pj_per_sample": pj,
            "fpga_dynamic_w": pj * 1e-12 * samples_per_s, "samples_per_s": samples_per_s,
            "method": (f"RTL event counts x {SOURCE} per-event energies, scaled to "
                       f"{ECP5_NODE_NM} nm / {ECP5_CORE_V} V (C V^2, C ~ node), x "
                       f"{FPGA_ASIC_DYNAMIC_RATIO:g} ({FPGA_SOURCE}); dynamic only: no static "
                       f"power, clock tree or idle toggling; an estimate, not a measurement")}


def energy_breakdown(counters, design, samples):
    """Picojoules per training sample by engine, from ``counters`` over ``samples`` samples.

    Memory sizes and widths come from ``design.memmap`` (:mod:`spikeforge.hdl.memmap`).
    """
    mm = design.memmap
    cfg, hw, P = design.cfg, design.hw, mm.P
    SW = mm.spike_width
    sizes = {  # bytes of each memory
        **{name: mm.memories[name].width * mm.memories[name].depth / 8
           for name in ("x", "spk", "u", "eps", "g", "w")},
        # per-PE accumulators inside the engines: FE partial sums per point, WUE dW per input
        "fe psum": mm.psum_depth * cfg.fwd_acc_bits / 8,
        "wue acc": mm.wgrad_acc_depth * cfg.wgrad_acc_bits / 8,
    }
    G_fe, G_wue = hw.fe_group, hw.wue_group
    tree = hw.table == "tree"
    lut_fe = cfg.w_bits + G_fe
    lut_wue = cfg.e_bits + G_wue
    n_alpha = len(cfg.alpha_terms)
    c = counters
    fe = {
        # one x read per look-up cycle: P look-ups, each one addition into the point's partial sum
        "spike reads": c["fe_x_reads"] * sram_pj(sizes["x"], SW),
        "look-up adds": c["fe_x_reads"] * P * add_pj(cfg.fwd_acc_bits),
        # a weight word per input of a group; the 2^G - 1 subset sums per lane per group
        "weight reads": c["fe_w_reads"] * sram_pj(sizes["w"], P * cfg.w_bits),
        **({"LUT builds": c["fe_w_reads"] / G_fe * (2 ** G_fe - 1) * P * add_pj(lut_fe),
            "LUT register writes": c["fe_w_reads"] / G_fe * 2 ** G_fe * P * register_pj(lut_fe)}
           if not tree else
           # adder trees: each look-up sums up to G masked values per lane (G - 1 adds); the
           # G values of a lane are loaded into its bank once per group
           {"adder trees": c["fe_x_reads"] * P * (G_fe - 1) * add_pj(lut_fe),
            "bank register writes": c["fe_w_reads"] * P * register_pj(cfg.w_bits)}),
        # each look-up reads and writes its point's partial sum (one SRAM per PE)
        "partial-sum SRAM": c["fe_x_reads"] * P * 2 * sram_pj(sizes["fe psum"],
                                                               cfg.fwd_acc_bits),
        # LIF: decay (shift-adds) + add + compare per lane, and the u/o writes
        "LIF": c["fe_writes"] * P * (n_alpha + 2) * add_pj(cfg.u_bits),
        "state writes": c["fe_writes"] * (sram_pj(sizes["u"], P * mm.state_bits) +
                                          sram_pj(sizes["spk"], SW)),
    }
    wue = {
        "spike reads": c["wue_x_reads"] * sram_pj(sizes["spk"], SW),
        "eps reads": c["wue_eps_reads"] * sram_pj(sizes["eps"], P * cfg.e_bits),
        **({"LUT builds": c["wue_eps_reads"] / G_wue * (2 ** G_wue - 1) * P * add_pj(lut_wue),
            "LUT register writes": c["wue_eps_reads"] / G_wue * 2 ** G_wue * P *
            register_pj(lut_wue)}
           if not tree else
           {"adder trees": c["wue_lookups"] * P * (G_wue - 1) * add_pj(lut_wue),
            "bank register writes": c["wue_eps_reads"] * P * register_pj(cfg.e_bits)}),
        # each look-up reads and writes its input's dW; weights are read for the update only
        "accumulator SRAM": c["wue_lookups"] * P * 2 * sram_pj(sizes["wue acc"],
                                                                cfg.wgrad_acc_bits),
        "look-up adds": c["wue_lookups"] * P * add_pj(cfg.wgrad_acc_bits),
        "weight reads": c["wue_w_reads"] * sram_pj(sizes["w"], P * cfg.w_bits),
        "update + writes": c["wue_w_writes"] * (P * 2 * add_pj(cfg.w_bits) +
                                                sram_pj(sizes["w"], P * cfg.w_bits)),
    }
    be = {
        "state reads": (c["be_u_reads"] * sram_pj(sizes["u"], P * mm.state_bits) +
                        c["be_g_reads"] * sram_pj(sizes["g"], P * cfg.e_bits) +
                        c["be_eps_reads"] * sram_pj(sizes["eps"], P * cfg.e_bits)),
        "recurrence": c["be_eps_writes"] * P * (n_alpha + 2) * add_pj(cfg.e_bits),
        "eps writes": c["be_eps_writes"] * sram_pj(sizes["eps"], P * cfg.e_bits),
        # each weight-word read: P multiplies, a P-input adder tree and one accumulation
        "MACs": c["be_w_reads"] * (P * mul_pj(max(cfg.w_bits, cfg.e_bits)) +
                                   P * add_pj(cfg.bwd_acc_bits) +
                                   sram_pj(sizes["w"], P * cfg.w_bits)),
        "g writes": c["be_g_writes"] * sram_pj(sizes["g"], cfg.e_bits),
    }
    other = {
        "output unit": (c["out_reads"] * sram_pj(sizes["spk"], SW) +
                        c["out_writes"] * sram_pj(sizes["g"], P * cfg.e_bits)),
    }
    result = {}
    for name, parts in (("forward", fe), ("weight update", wue), ("backward", be),
                        ("output", other)):
        result[name] = {k: v / samples for k, v in parts.items()}
    result["total_pj_per_sample"] = sum(sum(p.values()) for p in result.values())
    result["memory_bytes"] = sizes
    result["source"] = SOURCE
    return result
