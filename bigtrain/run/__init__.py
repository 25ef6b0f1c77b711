"""The job around one run: the Hydra task (`task`), the run dir's layout (`rundir`) and its
lock (`lock`), sweep tables (`sweep_table`), an Optuna trial's reporter (`search`), plots
(`plots`) and multi-process launches (`launch`). It picks the hooks a run gets; the engine
(bigtrain.train) only trains with them."""
