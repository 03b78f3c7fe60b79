"""Command-line interface of spikeforge (`spikeforge --help`)."""
