"""A tiny causal (decoder-only) transformer with an explicit key/value cache, for sampling token
sequences inside ``jit`` at a cost linear in their length.

GPT-2 layout (Radford et al. 2019): learned token and position embeddings, pre-LayerNorm blocks

    x <- x + Attn(LN(x)),   x <- x + MLP(LN(x)),   logits = W_out LN(x) + b_out,

multi-head causal self-attention written by hand,

    Attn(h)_p = W_o concat_heads( sum_{s <= p} softmax_s(q_p . k_s / sqrt(d)) v_s ),

and a GELU MLP of width ``mlp_ratio * width``.

Two ways to run the same parameters:
- ``__call__(tokens [..., L])``: every position at once (training: one pass scores a whole sequence).
- ``decode(token [B], position, cache)``: one position. Its key and value go into the cache
  (``[num_layers, B, max_len, heads, head_dim]``) and its query attends over the cached positions
  <= ``position``; nothing of the prefix is recomputed, so T decode steps cost O(T) network passes
  of one token each (their attention reads the ``max_len`` cache slots, masked: static shapes).
  Stepping ``decode`` through a sequence gives ``__call__``'s logits to float rounding
  (``tests/test_token_testbed.py``).

The output head is untied from the token embedding: with a vocabulary of ~20 tokens tying saves
~1k parameters, and in algorithmic tasks the next token is rarely the current one, so tying
would only constrain a tiny model. The head starts small (std 0.02), so a fresh model's policy is
close to uniform over the vocabulary, a maximum-entropy start for RL.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

_NEG = -1e30  # masked attention score: exp(_NEG - max) is exactly 0 in float32, and no inf - inf


@struct.dataclass
class KVCache:
    """Keys and values of the positions decoded so far, ``[num_layers, B, max_len, heads, head_dim]``
    each (slots past the current position are zeros and masked out)."""

    keys: jax.Array
    values: jax.Array


class _Block(nn.Module):
    width: int
    num_heads: int
    mlp_ratio: int

    def setup(self):
        self.attn_norm = nn.LayerNorm()
        self.qkv = nn.Dense(3 * self.width)
        self.attn_out = nn.Dense(self.width)
        self.mlp_norm = nn.LayerNorm()
        self.mlp_in = nn.Dense(self.mlp_ratio * self.width)
        self.mlp_out = nn.Dense(self.width)

    def _qkv(self, x):
        """``[..., width]`` -> q, k, v each ``[..., heads, head_dim]``."""
        qkv = self.qkv(self.attn_norm(x))
        qkv = qkv.reshape(x.shape[:-1] + (3, self.num_heads, self.width // self.num_heads))
        return qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]

    def _mlp(self, x):
        return self.mlp_out(nn.gelu(self.mlp_in(self.mlp_norm(x))))

    def __call__(self, x):
        """Full causal pass, ``x [B, L, width]``."""
        batch, length = x.shape[:2]
        q, k, v = self._qkv(x)  # [B, L, H, D]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]).astype(x.dtype)
        causal = jnp.tril(jnp.ones((length, length), bool))
        weights = jax.nn.softmax(jnp.where(causal, scores, _NEG), axis=-1)
        attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, self.width)
        x = x + self.attn_out(attended)
        return x + self._mlp(x)

    def decode(self, x, position, keys, values):
        """One position, ``x [B, width]``; ``keys``/``values`` this layer's cache ``[B, max_len, H, D]``.
        Returns the output and the cache with this position's key and value written in."""
        q, k, v = self._qkv(x)  # [B, H, D]
        keys = jax.lax.dynamic_update_slice_in_dim(keys, k[:, None], position, axis=1)
        values = jax.lax.dynamic_update_slice_in_dim(values, v[:, None], position, axis=1)
        scores = jnp.einsum("bhd,bkhd->bhk", q, keys) / jnp.sqrt(q.shape[-1]).astype(x.dtype)
        visible = jnp.arange(keys.shape[1]) <= position
        weights = jax.nn.softmax(jnp.where(visible, scores, _NEG), axis=-1)
        attended = jnp.einsum("bhk,bkhd->bhd", weights, values).reshape(x.shape[0], self.width)
        x = x + self.attn_out(attended)
        return x + self._mlp(x), keys, values


class CausalTransformer(nn.Module):
    """Decoder-only transformer over ``vocab_size`` tokens and up to ``max_len`` positions.

    >>> model = CausalTransformer(vocab_size=22, max_len=16)
    >>> params = model.init(key, jnp.zeros((1, 16), jnp.int32))
    >>> logits = model.apply(params, tokens)                                   # [..., L, V]
    >>> cache = model.init_cache(batch_size)
    >>> logits, cache = model.apply(params, token, position, cache, method="decode")  # [B, V]
    """

    vocab_size: int
    max_len: int
    width: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4

    def setup(self):
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not a multiple of num_heads {self.num_heads}")
        init = nn.initializers.normal(0.02)
        self.token_embed = nn.Embed(self.vocab_size, self.width, embedding_init=init)
        self.position_embed = self.param("position_embed", init, (self.max_len, self.width))
        self.blocks = [_Block(self.width, self.num_heads, self.mlp_ratio) for _ in range(self.num_layers)]
        self.final_norm = nn.LayerNorm()
        self.head = nn.Dense(self.vocab_size, kernel_init=init)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """Logits ``[..., L, vocab_size]`` of every position of ``tokens`` int ``[..., L]``;
        position p sees tokens 0..p, so its logits predict token p + 1."""
        return self.head(self.features(tokens))

    def features(self, tokens: jax.Array) -> jax.Array:
        """The last layer's features ``[..., L, width]`` (after the final LayerNorm): the logits
        are ``head(features)``, a linear map (CAPO's last-layer curvature model reads them)."""
        length = tokens.shape[-1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        x = self.token_embed(tokens.reshape(-1, length)) + self.position_embed[:length]
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x).reshape(tokens.shape + (self.width,))

    def init_cache(self, batch_size: int, dtype=jnp.float32) -> KVCache:
        """An empty cache for ``batch_size`` sequences (zeros; needs no parameters)."""
        shape = (self.num_layers, batch_size, self.max_len, self.num_heads, self.width // self.num_heads)
        return KVCache(keys=jnp.zeros(shape, dtype), values=jnp.zeros(shape, dtype))

    def decode(self, token: jax.Array, position, cache: KVCache) -> tuple[jax.Array, KVCache]:
        """Logits ``[B, vocab_size]`` after ``token`` int ``[B]`` at ``position`` (a scalar, may be
        traced, < max_len), given the cache of positions < ``position``; returns the cache with
        this position added. Positions must be fed in order 0, 1, 2, ... for the result to equal
        ``__call__``'s (later slots are masked, so stale entries there never matter)."""
        x = self.token_embed(token) + jax.lax.dynamic_index_in_dim(self.position_embed, position, keepdims=False)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block.decode(x, position, cache.keys[i], cache.values[i])
            keys.append(k)
            values.append(v)
        logits = self.head(self.final_norm(x))
        return logits, KVCache(keys=jnp.stack(keys), values=jnp.stack(values))
