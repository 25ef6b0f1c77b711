"""`bigtrain generate RUN_DIR --prompt TEXT...`: sample text from a trained language model."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import CHECKPOINT, run_dir_argument


def generate(
    run_dir: Path = run_dir_argument("A run dir of a language model"),
    prompt: list[str] = typer.Option(
        [], "--prompt", metavar="TEXT",
        help="Text to continue; repeat for several prompts, decoded as one batch (none: "
             "start from nothing). A prompt longer than the window (dataset.seq_len tokens) "
             "is truncated on the left: the model sees its last seq_len tokens, the output "
             "keeps all of it"),
    max_new: int = typer.Option(64, "--max-new", min=1, help="Tokens to generate per text"),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0,
                                      help="Divide the logits by this; 0 = greedy"),
    top_k: int = typer.Option(0, "--top-k", min=0,
                              help="Sample among the k likeliest tokens (0 = all)"),
    top_p: float = typer.Option(
        1.0, "--top-p",
        help="Sample among the likeliest tokens whose probabilities sum to at least p, "
             "in (0, 1] (1 = all; applied after --top-k)"),
    seed: int = typer.Option(0, "--seed", help="The same seed and options give the same text"),
    num_samples: int = typer.Option(1, "--num-samples", min=1,
                                    help="Continuations of each prompt"),
    stop: list[str] = typer.Option(
        [], "--stop", metavar="TEXT",
        help="End a text before the first place it generates this string (repeatable; a "
             "newline in bash: --stop $'\\n')"),
    cache: bool = typer.Option(
        True, "--cache/--no-cache",
        help="Decode bigtrain's transformer with a key/value cache; --no-cache reruns the "
             "whole context for every token (other models always do)"),
    checkpoint: str = CHECKPOINT,
) -> None:
    """Continue prompts with a trained LM: the texts on stdout (several: each under a
    `==> prompt P, sample S <==` line), the speed on stderr.

    bigtrain's transformer decodes with a key/value cache: the prompt runs once, then each
    new token alone. Once prompt and text outgrow the window, the model sees the latest half
    to whole window. Decoding computes in float32."""
    with reported():
        from bigtrain.inference.generate import Sampling, check_request

        sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        check_request(sampling, num_samples, stop)  # before TensorFlow is imported
        from bigtrain.core.tensorflow_start import quiet_tensorflow
        from bigtrain.inference.generate import generate as run

        quiet_tensorflow()
        result = run(run_dir, prompt, max_new, sampling, num_samples, stop, checkpoint, cache)
    several = len(result.outputs) > 1
    for i, out in enumerate(result.outputs):
        if several:
            typer.echo(("\n" if i else "") + f"==> prompt {out.prompt + 1}, sample "
                       f"{out.sample + 1} <==")
        typer.echo(out.text)
    for i in sorted({out.prompt for out in result.outputs if out.truncated}):
        typer.echo(f"prompt {i + 1} is longer than the window ({result.window} tokens): the "
                   f"model saw its last {result.window}", err=True)
    typer.echo(result.describe(), err=True)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
