"""bigtrain's Optuna sweeper for Hydra: `hydra/sweeper=bigtrain_optuna` (see sweeper.py)."""
