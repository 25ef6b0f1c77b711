"""The training engine: compiled steps (`engine`), the controller loop (`loop`) and its
actions, checkpoints, the objective, and `fit.train`, which builds a run's parts from its
config and trains with the hooks it is given. It never picks hooks or writes the run dir's
records: that is the job's (bigtrain.run)."""
