"""Tiny KerasHub presets made offline with KerasHub's own classes and `save_to_preset`: what
the tests (and scripts/bench_hub.py) fine-tune instead of a downloaded preset."""

from __future__ import annotations

from pathlib import Path


def byte_level_bpe(merges: tuple[str, ...] = ("Ġ t", "h e", "Ġt he", "i n", "e r", "o n")):
    """A GPT-2 style byte-level BPE tokenizer: the 256 byte symbols, a few merges, and
    <|endoftext|>."""
    import keras_hub
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    symbols = [ch for _, ch in sorted(zip(*bytes_to_unicode(), strict=True))]
    vocab = {s: i for i, s in enumerate(symbols)}
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    return keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=list(merges))


def gpt2(path: Path, hidden: int = 32, layers: int = 2, heads: int = 2, max_len: int = 64,
         seed: int = 0, dropout: float = 0.1) -> Path:
    """A GPT-2 causal-LM preset of random weights, with its tokenizer."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    tok = byte_level_bpe()
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tok.vocabulary_size(), num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=2 * hidden, max_sequence_length=max_len,
        dropout=dropout)
    backbone.save_to_preset(str(path))
    tok.save_to_preset(str(path))
    return Path(path)


def bert(path: Path, hidden: int = 32, layers: int = 2, heads: int = 2, max_len: int = 64,
         seed: int = 0) -> Path:
    """A BERT encoder preset of random weights, with a WordPiece vocabulary of letters, digits
    and a few words."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    words = ["the", "and", "good", "bad", "great", "awful", "movie", "film", "very", "not"]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars
             + ["##" + c for c in chars] + list(".,!?'"))
    tok = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=layers, num_heads=heads, hidden_dim=hidden,
        intermediate_dim=2 * hidden, max_sequence_length=max_len)
    backbone.save_to_preset(str(path))
    tok.save_to_preset(str(path))
    return Path(path)


def resnet(path: Path, image_size: int = 32, seed: int = 0) -> Path:
    """A small ResNet image backbone preset of random weights, with its image converter
    (resize to `image_size`, scale 0-255 to 0-1)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(None, None, 3))
    backbone.save_to_preset(str(path))
    converter = keras_hub.layers.ResNetImageConverter(image_size=(image_size, image_size),
                                                      scale=1 / 255.0)
    converter.save_to_preset(str(path))
    return Path(path)
