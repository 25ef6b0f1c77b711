"""`bigtrain export RUN_DIR --format savedmodel|keras|preset|hf|adapter`: a model to serve or load
elsewhere."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CHECKPOINT, choice, run_dir_argument


def export(
    run_dir: Path = run_dir_argument(),
    fmt: str = choice("savedmodel", "--format", ("savedmodel", "keras", "preset", "hf",
                                                 "adapter"),
                      "A TensorFlow SavedModel, a .keras file, or (model=hub runs) a "
                      "KerasHub preset directory, a Hugging Face Transformers folder, or the "
                      "LoRA adapter alone in PEFT's format"),
    out: Path | None = typer.Option(None, "--out",
                                    help="Where to write (default: RUN_DIR/export/<format>, or "
                                    "RUN_DIR/export/model.keras). A folder is replaced "
                                    "whole: only a new one or an earlier export is taken"),
    checkpoint: str = CHECKPOINT,
) -> None:
    """Export a checkpoint: a TensorFlow SavedModel that takes raw inputs (signatures
    serving_default, serve_strings for tables, serve for model inputs), a .keras file of
    standard Keras layers that loads without bigtrain, or for model=hub runs a KerasHub preset
    directory or a Transformers folder (`--format hf`: safetensors, config.json, the
    tokenizer and the chat template the run trained with, for transformers, vLLM or SGLang).
    LoRA adapters are merged into the weights, except with `--format adapter`, which writes
    them alone in PEFT's format (adapter_model.safetensors, adapter_config.json)."""
    with reported():
        from bigtrain.core.tensorflow_start import quiet_tensorflow
        from bigtrain.inference.restore import export_run

        quiet_tensorflow()
        path = export_run(run_dir, fmt, out, checkpoint)
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
