"""What serves a run already trained: restore it (`restore`), predict on new inputs
(`predict`), build its serving signatures (`serving`), generate text (`generate`) and evaluate
its checkpoints as they appear (`watch`)."""
