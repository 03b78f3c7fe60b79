"""Measured results, baselines and the generated report (`spikeforge report`)."""
