"""Benchmarks run by ``spikeforge bench``: cycles measured in RTL simulation on real data."""
