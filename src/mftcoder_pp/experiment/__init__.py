"""`mftpp experiment`: a whole comparison (baselines, MFTCoder++, ablations, seeds) -> a Table-1 report."""
