"""Training losses: per-task token losses, MFTCoder balancing baselines, focal alignment."""
