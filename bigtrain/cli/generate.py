"""`bigtrain generate RUN_DIR --prompt TEXT`: sample text from a trained language model."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported


def generate(
    run_dir: Path = typer.Argument(..., help="A run dir of a language model"),
    prompt: str = typer.Option("", "--prompt", help="Text to continue"),
    max_new: int = typer.Option(64, "--max-new", help="Tokens to generate"),
    temperature: float = typer.Option(1.0, "--temperature", help="0 = greedy"),
    top_k: int = typer.Option(0, "--top-k", help="Sample among the k likeliest (0 = all)"),
    seed: int = typer.Option(0, "--seed"),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest or best"),
) -> None:
    """Continue a prompt with a trained LM (no KV cache: each token reruns the window)."""
    from bigtrain.config.errors import ConfigError, check, check_choice

    with reported():
        check(max_new > 0, "--max-new", max_new, "must be > 0")
        check(temperature >= 0, "--temperature", temperature, "must be >= 0 (0 = greedy)")
        check(top_k >= 0, "--top-k", top_k, "must be >= 0 (0 = no cut)")
        check_choice("--checkpoint", checkpoint, ["latest", "best"])
        if not run_dir.is_dir():
            raise ConfigError("RUN_DIR", f"{run_dir} does not exist")
        from bigtrain.logs import quiet_tensorflow
        from bigtrain.train.generate import generate_text

        quiet_tensorflow()
        text = generate_text(run_dir, prompt, max_new, temperature, top_k, seed, checkpoint)
    typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
