"""MFTCoder++ training modules (TIAR, DAGG, HMD-Fusion): leaf code on tensors and models, no YAML config."""
