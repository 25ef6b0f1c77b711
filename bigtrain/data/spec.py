"""What a dataset tells the rest of bigtrain about itself (no TensorFlow needed)."""

from __future__ import annotations

from dataclasses import dataclass

#: a validation split with fewer examples than this (tokens, for a language model) is too
#: small to choose a best checkpoint or a sweep's best job by: an accuracy measured on 100
#: examples has a standard error of up to 5 points
MIN_VAL_EXAMPLES = 100
MIN_VAL_TOKENS = 10_000


def too_small_to_choose(spec: DatasetSpec) -> str | None:
    """Why `spec`'s validation split is too small to choose by, or None."""
    if spec.task == "lm":
        tokens = spec.num_val * spec.tokens_per_example
        if tokens < MIN_VAL_TOKENS:
            return (f"the validation split has {tokens:,} tokens, fewer than "
                    f"{MIN_VAL_TOKENS:,}")
        return None
    if spec.num_val < MIN_VAL_EXAMPLES:
        return f"the validation split has {spec.num_val} examples, fewer than {MIN_VAL_EXAMPLES}"
    return None


@dataclass(frozen=True)
class DatasetSpec:
    """The facts models, losses and metrics read: task, shapes, output size, split sizes."""

    name: str
    task: str  # classification | regression | lm
    input_shape: tuple[int, ...]
    input_dtype: str  # float32 for features and images, int32 for tokens
    num_outputs: int  # classes, vocabulary size, or regression targets
    num_train: int
    num_val: int
    num_test: int
    input_vocab: int = 0  # token inputs of classification data: ids are < input_vocab
    skipped: int = 0  # bad records left out (dataset.on_bad_record=skip)
    # statistics of the training split's labels (empty where a streamed source counts none):
    # regression targets' mean and deviation (the model's output is scaled by them, the loss
    # is on standardized targets, the baseline predicts the mean); class or token counts
    # (the baseline predicts the training prior)
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()
    label_counts: tuple[int, ...] = ()
    # language-model targets below 0 take no loss (instruction data: the prompts and the
    # padding); the loss is then the mean over the trained targets
    masked: bool = False
    # inputs are packed windows [T, 3] (token ids, segment, position: several examples in
    # one window, bigtrain/models/packing.py); the model itself takes the ids [T]
    packed: bool = False


    @property
    def tokens_per_example(self) -> int:
        """Tokens in one example of a language-model dataset (0 for other tasks)."""
        return self.input_shape[0] if self.task == "lm" else 0
