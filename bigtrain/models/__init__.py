"""Models: one module per architecture, each builder registered with its schema; each builds a
Keras 3 model."""

from __future__ import annotations

from contextlib import contextmanager

from bigtrain.core.registry import Registry

MODELS: Registry = Registry("model", "bigtrain.models")

#: `strategy.precision` -> the Keras dtype policy a model is built with
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@contextmanager
def dtype_policy(name: str):
    """Keras's process-wide dtype policy set to `name` while the block runs, then put back.
    Keras gives each layer the policy in force when it is made, so a model built inside
    carries its own and nothing leaks into the next model this process builds."""
    import keras

    before = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(before)


def build_model(cfg, spec, precision: str = "fp32"):  # -> keras.Model
    """Build the configured model for the dataset described by `spec` (imports TensorFlow),
    computing in `precision` (fp32, bf16 or fp16): the policy is the model's own."""
    with dtype_policy(POLICIES[precision]):
        model = MODELS.build(cfg, spec)
    if spec.task == "regression" and spec.target_std:
        model = scaled_output(model, spec.target_mean, spec.target_std)
    return model


def scaled_output(model, mean, std):  # -> keras.Model
    """A regression model whose raw outputs are standardized targets: its outputs times the
    training split's deviation plus its mean, in float32, so that predictions, exports and
    MAE are in the targets' own units while the layers learn values near 0 and 1. Keras's own
    Rescaling layer does it (constants, no weights), so a .keras export loads without bigtrain."""
    import keras

    if not isinstance(getattr(model, "inputs", None), list):
        from bigtrain.core.errors import ConfigError

        raise ConfigError("model", f"{type(model).__name__} is not a functional Keras model; "
                          "a regression model needs one (its output is scaled to the targets)")
    scale, offset = [float(v) for v in std], [float(v) for v in mean]
    outputs = keras.layers.Rescaling(scale=scale[0] if len(scale) == 1 else scale,
                                     offset=offset[0] if len(offset) == 1 else offset,
                                     dtype="float32", name="target_scale")(model.outputs[0])
    return keras.Model(model.inputs, outputs, name=model.name)


__all__ = ["MODELS", "POLICIES", "build_model", "dtype_policy"]
