"""A pre-norm Transformer: a causal decoder for language models, an encoder for classification
and regression (images as patches, vectors as one token per feature, token ids as tokens).

The fast path on CPUs: a block works on rows [B*T, D], so each projection is a plain MatMul
+ BiasAdd that TensorFlow fuses into one oneDNN call; attention uses one QKV projection split
with `unstack` (indexing it is slow in the gradient). The elementwise work around the matmuls
(layer norm, bias + exact GELU through `erf`, the scaled and masked softmax) runs as small
XLA-compiled islands with hand-written gradients: float32 math inside, the compute dtype
(e.g. bf16) in and out, one pass over memory each way. Positions are learned, sinusoidal or
rotary. Token id 0 is padding for classification over tokens: padded positions are masked
out of attention and pooling.

A language model also decodes with a key/value cache (`KVDecoder`, for
bigtrain.inference.generate): the same layers, weights and kernels, through `prefill` and `step`
methods beside `call`, which the training path never runs.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from bigtrain.core.errors import ConfigError
from bigtrain.models import MODELS, packing
from bigtrain.models.kernels import (
    NEG_INF,
    _softmax_fwd,
    attention_weights,
    bias_gelu,
    layer_norm,
)
from bigtrain.models.schemas import TransformerConfig


@keras.saving.register_keras_serializable("bigtrain")
class FastLayerNorm(keras.layers.Layer):
    """Layer norm over the last axis (see `layer_norm`): float32 weights and statistics, output
    in the dtype of its input, so a bf16 residual stream is read and written as bf16."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self._convert_input_args = False  # no float32 copy of the input: the kernel casts

    def build(self, input_shape):
        d = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(d,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(d,), initializer="zeros")

    def call(self, x):
        return layer_norm(x, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta),
                          self.epsilon)

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=x.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon}


def _rotary(x, positions):
    """Rotate pairs of channels by position-dependent angles (RoPE). x: [B, H, T, Dh];
    positions [T], or [B, T] (a packed batch: per example)."""
    dh = x.shape[-1]
    half = dh // 2
    inv = 1.0 / (10000 ** (ops.arange(0, half, dtype="float32") / half))
    angles = ops.cast(positions, "float32")[..., None] * inv  # [T, half] or [B, T, half]
    if len(angles.shape) == 3:
        angles = angles[:, None]  # [B, 1, T, half]
    cos, sin = ops.cos(angles), ops.sin(angles)
    x32 = ops.cast(x, "float32")
    x1, x2 = x32[..., :half], x32[..., half:]
    out = ops.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return ops.cast(out, x.dtype)


def _keep(x):
    """No dropout (inference)."""
    return x


def _write(cache, new, pos):
    """The cache [B, H, L, Dh] with position `pos` (a scalar) set to new [B, H, 1, Dh]."""
    b, h = ops.shape(cache)[0], ops.shape(cache)[1]
    rows = tf.reshape(tf.stack(tf.meshgrid(tf.range(b), tf.range(h), indexing="ij"), -1),
                      (-1, 2))
    index = tf.concat([rows, tf.fill((b * h, 1), pos)], axis=1)
    return tf.tensor_scatter_nd_update(cache, index, tf.reshape(new, (b * h, -1)))


@keras.saving.register_keras_serializable("bigtrain")
class TransformerBlock(keras.layers.Layer):
    def __init__(self, d_model: int, num_heads: int, mlp_ratio: float, dropout: float,
                 causal: bool, rotary: bool, remat: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.mlp_ratio = d_model, num_heads, mlp_ratio
        self.dropout_rate, self.causal, self.rotary = dropout, causal, rotary
        self.remat = remat
        self.ln1 = FastLayerNorm(epsilon=1e-5, name="ln1")
        self.ln2 = FastLayerNorm(epsilon=1e-5, name="ln2")
        self.qkv = keras.layers.Dense(3 * d_model, name="qkv")
        self.proj = keras.layers.Dense(d_model, name="proj")
        self.fc1 = keras.layers.Dense(int(d_model * mlp_ratio), name="fc1")
        self.fc2 = keras.layers.Dense(d_model, name="fc2")
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        d = self.d_model
        self.ln1.build(input_shape)
        self.ln2.build(input_shape)
        self.qkv.build(input_shape)
        self.proj.build((*input_shape[:-1], d))
        self.fc1.build(input_shape)
        self.fc2.build((*input_shape[:-1], int(d * self.mlp_ratio)))

    @staticmethod
    def _project(dense, x2d):
        """`dense` on rows [N, F]: a plain MatMul + BiasAdd, which TensorFlow's remapper fuses
        into one oneDNN call (Keras's Dense on [B, T, F] puts a reshape in between)."""
        return tf.nn.bias_add(tf.matmul(x2d, ops.cast(dense.kernel, x2d.dtype)),
                              ops.cast(dense.bias, x2d.dtype))

    def _qkv(self, h, b, t, positions=None):
        """Queries, keys and values [B, H, T, Dh] of rows h [B*T, D]; rotary positions are
        0..T-1 unless `positions` ([T], decoding from a cache; [B, T], a packed batch) says
        otherwise."""
        heads, dh = self.num_heads, self.d_model // self.num_heads
        qkv = ops.reshape(self._project(self.qkv, h), (b, t, 3, heads, dh))
        q, k, v = ops.unstack(ops.transpose(qkv, (2, 0, 3, 1, 4)), 3, axis=0)  # [B,H,T,Dh]
        if self.rotary:
            pos = ops.arange(t) if positions is None else positions
            q, k = _rotary(q, pos), _rotary(k, pos)
        return q, k, v

    def _attend(self, q, k, v, b, t, pad_mask, drop, segments=None):
        dh = self.d_model // self.num_heads
        scores = tf.matmul(q, k, transpose_b=True)
        weights = attention_weights(scores, 1.0 / math.sqrt(dh), self.causal, pad_mask,
                                    segments)
        weights = drop(weights)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        return self._project(self.proj, ops.reshape(out, (b * t, self.d_model)))

    def _mlp(self, x2, drop):
        h = self.ln2(x2)
        h = bias_gelu(tf.matmul(h, ops.cast(self.fc1.kernel, h.dtype)),
                      ops.cast(self.fc1.bias, h.dtype))
        return drop(self._project(self.fc2, h))

    def _forward(self, x, pad_mask, drop, packed=None):
        # the block works on rows [B*T, D]: every projection is then a plain 2-D matmul
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        x2 = ops.reshape(x, (b * t, self.d_model))
        positions = packed.positions if packed is not None else None
        q, k, v = self._qkv(self.ln1(x2), b, t, positions)
        attended = self._attend(q, k, v, b, t, pad_mask, drop,
                                packed.segments if packed is not None else None)
        x2 = x2 + drop(attended)
        x2 = x2 + self._mlp(x2, drop)
        return ops.reshape(x2, (b, t, self.d_model))

    def call(self, x, pad_mask=None, training=None):
        packed = packing.current()  # read here: a recomputation runs outside the scope
        if self.remat and training:
            return self._recomputed(x, pad_mask, packed)
        return self._forward(x, pad_mask, lambda h: self.drop(h, training=training), packed)

    #: dropout masks one training call draws (attention weights, attention out, MLP out)
    DRAWS = 3

    def _recomputed(self, x, pad_mask, packed=None):
        """`call` in training under tf.recompute_grad: only the block's input is kept for the
        backward pass, which runs the block again. Dropout draws from seeds read once, before
        the block, as the layer's Dropout would (its seed state, then +1 per mask), so the
        recomputation redraws the forward pass's masks, the seed state advances as without
        remat, and a resumed run draws what an unbroken one would."""
        rate = self.drop.rate
        seeds = None
        if 0.0 < rate < 1.0:
            state = self.drop.seed_generator.state
            seeds = tf.identity(state.value)  # a copy: the assign below must not change it
            state.assign(seeds + tf.constant([0, self.DRAWS], seeds.dtype))

        def block(x):
            drawn = iter(range(self.DRAWS))

            def drop(h):
                if seeds is None:
                    return self.drop(h, training=True)  # rate 0 or 1: no mask to draw
                seed = seeds + tf.constant([0, next(drawn)], seeds.dtype)
                if seed.dtype != tf.int32:  # as Keras casts its seeds for stateless ops
                    seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
                return tf.nn.experimental.stateless_dropout(h, rate=rate, seed=seed)

            return self._forward(x, pad_mask, drop, packed)

        return tf.recompute_grad(block)(x)

    # decoding (inference only; see KVDecoder): the same weights and kernels as `call`
    def prefill(self, x):
        """`call` on x [B, T, D] (causal, no dropout) that also returns the keys and values
        [B, H, T, Dh] it attended over: the cache a decoder continues from."""
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        x2 = ops.reshape(x, (b * t, self.d_model))
        q, k, v = self._qkv(self.ln1(x2), b, t)
        x2 = x2 + self._attend(q, k, v, b, t, None, _keep)
        x2 = x2 + self._mlp(x2, _keep)
        return ops.reshape(x2, (b, t, self.d_model)), k, v

    def step(self, x2, k_cache, v_cache, pos, visible):
        """One token per row, x2 [B, D], at cache position `pos` (a scalar, every row the
        same): its key and value are written into the caches [B, H, L, Dh], it attends over
        the positions `visible` ([L] bool, True up to `pos`). Returns (x2, caches)."""
        b = ops.shape(x2)[0]
        dh = self.d_model // self.num_heads
        q, k, v = self._qkv(self.ln1(x2), b, 1, positions=pos[None])  # [B, H, 1, Dh]
        k_cache, v_cache = _write(k_cache, k, pos), _write(v_cache, v, pos)
        scores = tf.matmul(q, k_cache, transpose_b=True)  # [B, H, 1, L]
        weights = _softmax_fwd(scores, visible, tf.constant(1.0 / math.sqrt(dh), tf.float32),
                               tf.constant(NEG_INF, tf.float32))
        out = ops.reshape(ops.matmul(weights, v_cache), (b, self.d_model))  # T = 1: no transpose
        x2 = x2 + self._project(self.proj, out)
        return x2 + self._mlp(x2, _keep), k_cache, v_cache

    def saved_elements(self, tokens: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """What one training example of `tokens` tokens costs this block, as elements
        (compute dtype, float32): (kept, working). Kept: what the forward pass keeps for the
        backward pass (with remat only the block's input). Working: what is alive at once
        while the block's gradient runs (with remat the recomputed activations too), counted
        once per model: the attention scores and their gradient beside the kept weights."""
        t, d, h = tokens, self.d_model, self.num_heads
        f = int(d * self.mlp_ratio)
        drops = 0.0 < self.dropout_rate < 1.0
        # ln1 in/out, q, k, v, attention out, ln2 in/out; fc1 out (GELU's input), fc2's input
        full = 8 * t * d + 2 * t * f + h * t * t * (3 if drops else 1) + (2 * t * d if drops
                                                                          else 0)
        full32 = 2 * t * d if self.rotary else 0  # float32 q and k rotated
        working = 2 * h * t * t + 3 * t * f  # scores' and weights' gradients, the MLP's
        if self.remat:
            return (t * d, 0), (full + working, full32)
        return (full, full32), (working, 0)

    def get_config(self) -> dict:
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio, "dropout": self.dropout_rate,
                "causal": self.causal, "rotary": self.rotary, "remat": self.remat}


@keras.saving.register_keras_serializable("bigtrain")
class TokenEmbedding(keras.layers.Layer):
    """Token ids to vectors; called with `logits=True`, vectors to vocabulary logits through
    the same (tied) matrix: the matmul in the compute dtype (bf16 under mixed precision, as
    the blocks' matmuls; at GPT-2 small's 50,257 tokens it is a third of the model's FLOPs),
    against the matrix as it is stored (no transposed copy), and the logits returned in
    float32 for the loss."""

    def __init__(self, vocab_size: int, d_model: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.d_model = vocab_size, d_model

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.vocab_size, self.d_model), name="embeddings",
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x, logits=False):
        if logits:
            dtype = self.compute_dtype
            rows = tf.reshape(tf.cast(x, dtype), (-1, self.d_model))
            out = tf.matmul(rows, tf.cast(self.embeddings, dtype), transpose_b=True)
            out = tf.reshape(out, tf.concat([tf.shape(x)[:-1], [self.vocab_size]], 0))
            out.set_shape(x.shape[:-1] + (self.vocab_size,))
            return tf.cast(out, tf.float32)
        return ops.cast(ops.take(self.embeddings, ops.cast(x, "int32"), axis=0), self.compute_dtype)

    def compute_output_spec(self, x, logits=False):
        if logits:
            return keras.KerasTensor((*x.shape[:-1], self.vocab_size), dtype="float32")
        return keras.KerasTensor((*x.shape, self.d_model), dtype=self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size, "d_model": self.d_model}


@keras.saving.register_keras_serializable("bigtrain")
class Positions(keras.layers.Layer):
    """Adds learned or sinusoidal position vectors (rotary positions live in attention)."""

    def __init__(self, max_len: int, d_model: int, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.max_len, self.d_model, self.kind = max_len, d_model, kind

    def build(self, input_shape):
        if self.kind == "learned":
            self.table = self.add_weight(shape=(self.max_len, self.d_model), name="table",
                                         initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        t = ops.shape(x)[1]
        packed = packing.current()
        if packed is not None:  # positions restart at each example of a packed batch
            if self.kind == "learned":
                return x + ops.cast(tf.gather(self.table, packed.positions), x.dtype)
            if self.kind == "sinusoidal":
                return x + ops.cast(self._sinusoids(packed.positions, t), x.dtype)
            return x
        if self.kind == "learned":
            return x + ops.cast(self.table[:t], x.dtype)[None]
        if self.kind == "sinusoidal":
            return x + ops.cast(self._sinusoids(ops.arange(t), t), x.dtype)[None]
        return x

    def _sinusoids(self, positions, t):
        """Position vectors of positions [T] ([T, D]) or [B, T] ([B, T, D])."""
        pos = ops.cast(positions, "float32")[..., None]
        i = ops.arange(0, self.d_model, 2, dtype="float32")
        angle = pos / ops.power(10000.0, i / self.d_model)
        out = ops.stack([ops.sin(angle), ops.cos(angle)], axis=-1)
        return ops.reshape(out, (*ops.shape(angle)[:-1], self.d_model))

    def at(self, x, pos):
        """x [B, D], one token per row at position `pos` (a scalar): `call` for that
        position alone (decoding from a cache)."""
        if self.kind == "learned":
            return x + ops.cast(tf.gather(self.table, pos), x.dtype)[None]
        if self.kind == "sinusoidal":
            return x + ops.cast(self._sinusoids(pos[None], 1), x.dtype)
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "max_len": self.max_len, "d_model": self.d_model,
                "kind": self.kind}


@keras.saving.register_keras_serializable("bigtrain")
class ClassToken(keras.layers.Layer):
    """Prepends a learned [CLS] vector (and a True to the padding mask)."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), name="token",
                                     initializer="zeros")

    def call(self, x):
        cls = ops.broadcast_to(ops.cast(self.token, x.dtype), (ops.shape(x)[0], 1, x.shape[-1]))
        return ops.concatenate([cls, x], axis=1)


@keras.saving.register_keras_serializable("bigtrain")
class MaskedMeanPool(keras.layers.Layer):
    def call(self, x, pad_mask=None):
        if pad_mask is None:
            return ops.mean(x, axis=1)
        m = ops.cast(pad_mask, x.dtype)[..., None]
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)


def _check(cfg, spec) -> None:
    if cfg.d_model % cfg.num_heads:
        raise ConfigError("model.d_model", f"{cfg.d_model} must be divisible by model.num_heads "
                          f"({cfg.num_heads})")
    if cfg.positions == "rotary" and (cfg.d_model // cfg.num_heads) % 2:
        raise ConfigError("model.positions", "rotary needs an even head size "
                          "(d_model / num_heads)")


def _patches(x, spec, patch: int):
    """Images [B, H, W(, C)] to patch vectors [B, N, p*p*C]."""
    shape = spec.input_shape
    h, w = shape[0], shape[1]
    c = shape[2] if len(shape) == 3 else 1
    if h % patch or w % patch:
        raise ConfigError("model.patch_size", f"{patch} must divide the image size {h}x{w}")
    x = keras.layers.Reshape((h // patch, patch, w // patch, patch, c))(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5))(x)
    return keras.layers.Reshape(((h // patch) * (w // patch), patch * patch * c))(x)


@MODELS.register(TransformerConfig)
def build_transformer(cfg, spec) -> keras.Model:
    _check(cfg, spec)
    d = cfg.d_model
    inputs = keras.Input(shape=spec.input_shape, dtype=spec.input_dtype, name="inputs")
    is_tokens = spec.input_dtype.startswith("int")
    pad_mask = None
    embed = None
    if is_tokens:
        vocab = spec.num_outputs if spec.task == "lm" else (cfg.vocab_size or spec.input_vocab)
        if vocab <= 0:
            raise ConfigError("model.vocab_size", "set it to the token vocabulary size for "
                              "classification over tokens")
        embed = TokenEmbedding(vocab, d, name="embed")
        x = embed(inputs)
        if spec.task != "lm":
            pad_mask = ops.not_equal(inputs, 0)
    elif len(spec.input_shape) >= 2:
        x = keras.layers.Dense(d, name="patch_embed")(_patches(inputs, spec, cfg.patch_size))
    else:
        x = keras.layers.Reshape((spec.input_shape[0], 1))(inputs)
        x = keras.layers.Dense(d, name="feature_embed")(x)

    causal = spec.task == "lm"
    use_cls = not causal and cfg.pooling == "cls"
    if use_cls:
        x = ClassToken(name="cls")(x)
        if pad_mask is not None:
            pad_mask = ops.concatenate([ops.ones_like(pad_mask[:, :1]), pad_mask], axis=1)
    x = Positions(int(x.shape[1]), d, cfg.positions, name="positions")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    for i in range(cfg.num_layers):
        x = TransformerBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, causal,
                             cfg.positions == "rotary", remat=cfg.remat,
                             name=f"block{i}")(x, pad_mask=pad_mask)
    x = FastLayerNorm(epsilon=1e-5, name="final_norm")(x)

    if causal:
        if cfg.tie_embeddings:
            outputs = embed(x, logits=True)
        else:
            outputs = keras.layers.Dense(spec.num_outputs, dtype="float32", name="head")(x)
        return keras.Model(inputs, outputs, name="transformer_lm")
    pooled = x[:, 0] if use_cls else MaskedMeanPool(name="pool")(x, pad_mask=pad_mask)
    outputs = keras.layers.Dense(spec.num_outputs, dtype="float32", name="head")(pooled)
    return keras.Model(inputs, outputs, name="transformer")


class KVDecoder:
    """The decode path of a causal `transformer_lm` (dataset task lm), on the model's own
    layers and weights: `prefill` runs a context through the blocks once (the training
    forward pass, keeping each block's keys and values [B, H, L, Dh]), then `step` runs one
    new token per row through them, attending over its layer's cached keys and values.

    Positions are those of the context: learned and sinusoidal vectors are added at the
    token's position, rotary angles rotate its query and key there. Every row of a batch is
    at the same position (prompts of different lengths are fed token by token past the
    shortest; see bigtrain.inference.generate). The caches are plain tensors, so a decode loop
    can carry them through `tf.while_loop`.
    """

    def __init__(self, model: keras.Model):
        self.embed = model.get_layer("embed")
        self.positions = model.get_layer("positions")
        self.blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
        self.norm = model.get_layer("final_norm")
        names = {layer.name for layer in model.layers}
        self.head = model.get_layer("head") if "head" in names else None
        self.window = int(self.positions.max_len)

    def _logits(self, x2):
        x2 = self.norm(x2)
        return self.embed(x2, logits=True) if self.head is None else self.head(x2)

    def prefill(self, ids, length):
        """ids [B, L] (L <= window) of which the first `length` are the context: the float32
        logits [B, V] after position length - 1 and the caches (keys and values of each
        block, filled up to length - 1; what follows is never attended to)."""
        x = self.positions(self.embed(ids))
        caches = []
        for block in self.blocks:
            x, k, v = block.prefill(x)
            caches += [k, v]
        return self._logits(x[:, length - 1]), tuple(caches)

    def step(self, tokens, pos, caches):
        """tokens [B] at position `pos` (a scalar < L) after a context of `pos` tokens in
        `caches`: the logits [B, V] after it and the caches with its keys and values."""
        x2 = self.positions.at(self.embed(tokens), pos)
        visible = tf.range(caches[0].shape[2]) <= pos
        out = []
        for i, block in enumerate(self.blocks):
            x2, k, v = block.step(x2, caches[2 * i], caches[2 * i + 1], pos, visible)
            out += [k, v]
        return self._logits(x2), tuple(out)


def kv_decoder(model) -> KVDecoder | None:
    """The KV-cache decode path of bigtrain's causal transformer, None for other models."""
    if getattr(model, "name", None) != "transformer_lm":
        return None
    return KVDecoder(model)
