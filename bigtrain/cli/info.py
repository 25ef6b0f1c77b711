"""`bigtrain info [OVERRIDES]`: the configured model's size, FLOPs and memory, per layer."""

from __future__ import annotations

import typer

from bigtrain.cli.errors import reported
from bigtrain.cli.params import OVERRIDES


def info(
    overrides: list[str] | None = OVERRIDES,
) -> None:
    """Report the configured model's parameters, size, FLOPs and memory, layer by layer."""
    from rich.console import Console
    from rich.table import Table

    from bigtrain.cli.hydra_glue import compose
    from bigtrain.config.schema import to_typed

    with reported():
        config = to_typed(compose(overrides or []))
        from bigtrain.core.tensorflow_start import quiet_tensorflow

        quiet_tensorflow()
        import tensorflow as tf

        from bigtrain.data import build_dataset
        from bigtrain.models import build_model
        from bigtrain.models.size import device_memory, fits, gib, measure, optimizer_slots
        from bigtrain.strategy.devices import resolve_precision
        from bigtrain.train.fit import data_tokenizer

        spec = build_dataset(config.dataset, tokenizer=data_tokenizer(config)).spec
        model = build_model(config.model, spec, "fp32")
        size = measure(model, spec.input_shape, spec.input_dtype)
        gpu = bool(tf.config.list_physical_devices("GPU"))
        precision = resolve_precision(config.strategy.precision, config.strategy.name,
                                      recurrent=config.model.recurrent)

    batch = config.trainer.batch_size
    console = Console()
    table = Table(title=f"model {config.model.name} on {spec.name} ({spec.task}, input "
                  f"{spec.input_shape})", show_lines=False)
    for col in ("layer", "type", "output (per example)", "params", "activations"):
        table.add_column(col, justify="right" if col in ("params", "activations") else "left")
    for r in size.layers:
        table.add_row(r.name, r.kind, r.output_shape, f"{r.params:,}", f"{r.activations:,}")
    console.print(table)
    summary = Table(show_header=False, box=None)
    summary.add_row("total parameters", f"{size.trainable + size.non_trainable:,}")
    summary.add_row("trainable parameters", f"{size.trainable:,}")
    summary.add_row("non-trainable parameters", f"{size.non_trainable:,}")
    summary.add_row("size fp32 / bf16 / fp16", " / ".join(
        f"{size.megabytes(p):.2f} MB" for p in ("fp32", "bf16", "fp16")))
    summary.add_row("FLOPs per example, forward", f"{size.flops_forward:,}")
    summary.add_row("FLOPs per example, training step (~3x forward)",
                    f"{size.flops_train_step:,}")
    console.print(summary)

    # a step's peak per precision: the micro-batch one replica runs at once
    micro = max(1, batch // config.trainer.grad_accum)
    slots = optimizer_slots(config.optim)
    memory = Table(title=f"training step memory at batch {micro} ({config.optim.name}: "
                   f"{slots:g} slot(s) per parameter"
                   + (", remat" if getattr(config.model, "remat", False) else "") + ")")
    for col in ("precision", "weights", "gradients", "optimizer", "activations", "total"):
        memory.add_column(col, justify="left" if col == "precision" else "right")
    estimates = {p: size.memory(micro, p, slots) for p in ("fp32", "bf16", "fp16")}
    for p, e in estimates.items():
        memory.add_row(p + (" (this run)" if p == precision else ""), gib(e.weights),
                       gib(e.gradients), gib(e.optimizer), gib(e.activations), gib(e.total))
    console.print(memory)
    available = device_memory(gpu)
    warning = fits(estimates[precision], available)
    if warning:
        Console(stderr=True).print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    elif available:
        console.print(f"fits: {gib(estimates[precision].total)} of {available[0]} "
                      f"{gib(available[1])}")

def register(app: typer.Typer) -> None:
    app.command("info")(info)
