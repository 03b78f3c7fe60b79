"""Amaranth HDL of the spikeforge engines and accelerator."""
