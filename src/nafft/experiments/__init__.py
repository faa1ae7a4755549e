"""End-to-end jobs built from the library: the demo (`nafft demo`) and the ablation runner (`nafft ablate`)."""
