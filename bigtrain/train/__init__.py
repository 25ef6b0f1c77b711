"""The training engine: compiled steps, the controller loop, hooks and checkpoints."""
