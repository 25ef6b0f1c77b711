"""bigtrain\x27s Hydra configs (the top-level conf/ folder), shipped as package data."""
