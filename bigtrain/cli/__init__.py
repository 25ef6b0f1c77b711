"""The command-line interface. Nothing here imports TensorFlow at module level."""
