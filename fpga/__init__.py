"""FPGA flows: board builds with the yowasp toolchain, area and Fmax reports."""
