"""Config: the combined typed view of a run (`schema`: FitConfig, built from every group's
schema), the `trainer` group's settings (`trainer`) and the shipped catalog (`catalog`)."""
