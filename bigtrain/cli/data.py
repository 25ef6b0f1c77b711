"""`bigtrain data [OVERRIDES]`: the dataset's spec, examples and input-pipeline speed."""

from __future__ import annotations

from pathlib import Path

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import OVERRIDES


def data(
    overrides: list[str] | None = OVERRIDES,
    examples: int = typer.Option(5, "--examples", min=0, help="Examples to show"),
    out: Path | None = typer.Option(None, "--out", help="PNG grid of images (default: "
                                    "./<dataset>_examples.png, for image data)"),
    batches: int = typer.Option(50, "--batches", min=1,
                                help="Batches to time the pipeline over"),
) -> None:
    """Show the configured dataset's spec, examples and input-pipeline speed (and, for text
    through a tokenizer, its vocabulary, examples decoded back, tokens per character)."""
    from rich.console import Console
    from rich.table import Table

    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.checks import check_config

    with reported():
        config = check_config(compose(overrides or []))  # before TensorFlow loads
        from bigtrain.core.tensorflow_start import quiet_tensorflow

        quiet_tensorflow()
        from bigtrain.data import build_dataset
        from bigtrain.data.inspect import (
            class_label,
            class_names,
            describe_example,
            describe_target,
            image_grid,
            pipeline_examples_per_sec,
        )
        from bigtrain.train.fit import data_tokenizer

        splits = build_dataset(config.dataset, tokenizer=data_tokenizer(config))
        spec = splits.spec
        names = class_names(splits) if spec.task == "classification" else None
        batch = min(config.trainer.batch_size, spec.num_train)
        speed = pipeline_examples_per_sec(splits, batch, batches)
        shown = list(splits.train.take(max(examples, 16)).as_numpy_iterator())

    console = Console()
    facts = Table(show_header=False, box=None, title=f"dataset {spec.name}")
    outputs = str(spec.num_outputs)
    if names:
        rows_of = (splits.report or {}).get("class_rows") or {}
        shown_names = ", ".join(f"{n} ({rows_of[n]} rows)" if n in rows_of else n
                                for n in names[:20]) + (" ..." if len(names) > 20 else "")
        outputs = f"{spec.num_outputs} classes: {shown_names}"
    report = splits.report or {}
    task = spec.task + (f" ({report['task_reason']})" if report.get("task_reason") else "")
    rows = [("task", task), ("input", f"{spec.input_shape} {spec.input_dtype}"),
            ("outputs", outputs),
            ("splits", f"{spec.num_train} train / {spec.num_val} val / {spec.num_test} test")]
    tok = splits.tokenizer
    if tok is not None:
        learned = "given" if config.dataset.tokenizer or tok.kind == "preset" else \
            "learned from the training split"
        rows += [("tokenizer", f"{tok.kind} ({type(tok.layer).__name__}), {tok.vocab_size:,} "
                  f"tokens, {learned}; pad {tok.pad_id}, start {tok.start_id}, end "
                  f"{tok.end_id}")]
        if splits.tokens_per_char is not None:
            rows.append(("tokens per character",
                         f"{splits.tokens_per_char:.3f} (training split)"))
    rows.append(("pipeline", f"{speed:,.0f} examples/s at batch {batch} over {batches} batches"))
    for k, v in rows:
        facts.add_row(k, str(v))
    console.print(facts)
    if report.get("columns"):
        console.print(columns_table(report))
    if report.get("kind") == "chat":
        chat_examples(console, report, shown[:examples], spec, tok)
        return
    table = Table(title="training examples (first of the unshuffled split)")
    table.add_column("#", justify="right")
    table.add_column("input")
    if tok is not None:
        table.add_column("decoded")
    table.add_column("target")
    for i, (x, y) in enumerate(shown[:examples]):
        cells = [str(i), describe_example(x, spec)]
        if tok is not None:
            cells.append(repr(tok.decode(x.reshape(-1).tolist())))
        table.add_row(*cells, describe_target(y, spec, names))
    console.print(table)
    if len(spec.input_shape) >= 2 and spec.input_dtype.startswith("float"):
        import numpy as np

        path = out or Path(f"{spec.name}_examples.png")
        titles = [class_label(y, names) for _, y in shown] \
            if spec.task == "classification" else None
        image_grid(np.stack([x for x, _ in shown]), path, titles)
        console.print(f"image grid: {path}" + (" (each image titled with its class)"
                                               if titles else ""))


def chat_examples(console, report: dict, shown: list, spec, tok) -> None:
    """Instruction examples as rendered through the template, the tokens the loss is taken
    on (the answers, with train_on=assistant) in bold green, the rest dimmed."""
    from rich.rule import Rule
    from rich.text import Text

    from bigtrain.data.inspect import trained_runs

    def decode(ids: list[int]) -> str:
        if tok is None:
            return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")
        return tok.decode(ids, keep_special=True)  # a start or end token is shown too

    console.print(f"template {report['template']}, loss on "
                  f"{'the answers' if report['train_on'] == 'assistant' else 'every token'}: "
                  f"{100 * report['trained_share']:.1f}% of the training targets trained, "
                  f"windows {100 * report['filled_share']:.1f}% filled; "
                  f"{report['cut']} cut, {report['dropped']} dropped for length")
    what = "window" if report.get("packed") else "example"
    # without a terminal the colours are gone: the trained tokens are bracketed instead
    marks = ("", "") if console.is_terminal else ("⟦", "⟧")
    if marks[0]:
        console.print("(not a terminal: the trained tokens are shown between ⟦ and ⟧)")
    for i, (x, y) in enumerate(shown):
        if x.ndim == 2:  # a packed window: ids, segments, positions
            n = int(x[:, 1].max())
            console.print(Rule(f"window {i}: {n} example(s) packed (trained tokens in bold "
                               "green)"))
            x = x[:, 0]
        else:
            console.print(Rule(f"{what} {i} (trained tokens in bold green)"))
        text = Text()
        for piece, trained in trained_runs(x, y, decode):
            if trained:
                text.append(marks[0] + piece + marks[1], style="bold green")
            else:
                text.append(piece, style="dim")
        console.print(text)


def columns_table(report: dict):
    """The table's columns as `dataset=csv` reads them: type, why, and the counts behind it."""
    from rich.table import Table

    table = Table(title=f"columns (label {report['label']!r}; +dataset.types.<column>="
                  "numeric|categorical|ignore overrides a type)")
    for name, justify in (("column", "left"), ("type", "left"), ("missing", "right"),
                          ("distinct", "right"), ("not numbers", "right"), ("why", "left")):
        table.add_column(name, justify=justify)
    for c in report["columns"]:
        table.add_row(c["column"], c["type"], str(c["missing"]), str(c["distinct"]),
                      str(c["bad_numbers"]) if c["type"] == "numeric" else "",
                      c["reason"])
    return table


def register(app: typer.Typer) -> None:
    app.command("data")(data)
