"""`bigtrain generate RUN_DIR --prompt TEXT`: sample text from a trained language model."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import run_dir_argument
from bigtrain.cli.predict import CHECKPOINT


def generate(
    run_dir: Path = run_dir_argument("A run dir of a language model"),
    prompt: str = typer.Option("", "--prompt", help="Text to continue"),
    max_new: int = typer.Option(64, "--max-new", min=1, help="Tokens to generate"),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="0 = greedy"),
    top_k: int = typer.Option(0, "--top-k", min=0,
                              help="Sample among the k likeliest (0 = all)"),
    seed: int = typer.Option(0, "--seed"),
    checkpoint: str = CHECKPOINT,
) -> None:
    """Continue a prompt with a trained LM (no KV cache: each token reruns the window)."""
    with reported():
        from bigtrain.logs import quiet_tensorflow
        from bigtrain.train.generate import generate_text

        quiet_tensorflow()
        text = generate_text(run_dir, prompt, max_new, temperature, top_k, seed, checkpoint)
    typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
