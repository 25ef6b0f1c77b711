"""Fetch what a model loads from outside its config (pretrained weights, a KerasHub preset)
into its cache, and check it, so that a run that cannot get them stops before Hydra makes its
run dir. `bigtrain fit` calls `fetch` for a single run after the prechecks. The schemas only
hold and check settings; downloading is a builder's work, so it lives here, beside them."""

from __future__ import annotations

from bigtrain.core.tensorflow_start import import_tensorflow
from bigtrain.models.schemas import HubConfig, KerasAppConfig, ModelConfig


def fetch(cfg: ModelConfig) -> None:
    """Fetch and check the configured model's pretrained weights, if it loads any (imports
    TensorFlow then, its start-up chatter kept off the console); other models do nothing."""
    if isinstance(cfg, HubConfig):
        import_tensorflow()
        from bigtrain.models.hub import locate

        locate(cfg.preset)
    elif isinstance(cfg, KerasAppConfig) and cfg.weights != "none":
        import_tensorflow()
        from bigtrain.models.keras_app import fetch_weights

        fetch_weights(cfg)
