"""What a dataset tells the rest of bigtrain about itself (no TensorFlow needed)."""

from __future__ import annotations

from dataclasses import dataclass


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


    @property
    def tokens_per_example(self) -> int:
        """Tokens in one example of a language-model dataset (0 for other tasks)."""
        return self.input_shape[0] if self.task == "lm" else 0
