"""Cross-modal attention: ERA5 (or predicted) features query the U-Net hidden state.

For every variable, the ``h*w`` positions of its encoder features are the queries and the
``h*w`` positions of the U-Net state the keys and values; variables run as one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mdcli.models.causal import CausalMaskNet
from mdcli.models.era5_encoder import fuse_variables


class CrossAttention(nn.Module):
    """Multi-head attention ``[N, Lq, Dq]`` x ``[N, Lk, Dc]`` -> ``[N, Lq, Dq]``."""

    def __init__(self, query_dim: int, context_dim: int, heads: int = 6, dim_head: int = 64
                 ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, query_dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, lq, _ = query.shape
        q, k, v = (t.view(n, t.shape[1], self.heads, -1).transpose(1, 2)
                   for t in (self.to_q(query), self.to_k(context), self.to_v(context)))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(n, lq, -1))


class CrossModalFusion(nn.Module):
    """One fusion site: per-variable cross-attention, softmax-weighted fusion, residual add.

    As in a transformer block the query stream keeps a residual: a variable's attention
    features are ``enc + attention(norm(enc), norm(h))``, so the ERA5 content itself, not only
    where it attends, reaches the U-Net.

    With a ``decompose`` mask this is the student's causal cross-attention: the attention
    features go through the :class:`~mdcli.models.causal.CausalMaskNet` before they are
    fused. The features returned (and distilled) are those *before* the mask, as the seed's
    ``feat_32[var] = attn_feat``: every channel of them stays trainable by the feature loss.
    """

    def __init__(self, enc_channels: int, hidden_channels: int, heads: int, dim_head: int,
                 decompose: CausalMaskNet | None = None) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(enc_channels)
        self.norm_kv = nn.LayerNorm(hidden_channels)
        self.attn = CrossAttention(enc_channels, hidden_channels, heads, dim_head)
        self.decompose = decompose
        self.proj = nn.Conv2d(enc_channels, hidden_channels, 1)

    def forward(self, h: torch.Tensor, enc: torch.Tensor, weights: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """``h [B, C, h, w]``, ``enc [B, V, E, h, w]``, ``weights [V]``.

        Returns the new ``h``, the per-variable attention features ``[B, V, E, h, w]``
        (before the mask) and, for the causal version, their ``(causal, non_causal)`` parts.
        """
        b, v, e, hh, ww = enc.shape
        query = self.norm_q(enc.flatten(3).transpose(2, 3).reshape(b * v, hh * ww, e))
        context = self.norm_kv(h.flatten(2).transpose(1, 2))
        context = context.unsqueeze(1).expand(b, v, *context.shape[1:]).reshape(b * v, hh * ww, -1)
        attn = self.attn(query, context).view(b, v, hh * ww, e).transpose(2, 3)
        attn = enc + attn.reshape(b, v, e, hh, ww)
        if self.decompose is None:
            return h + self.proj(fuse_variables(attn, weights)), attn, None
        fused, causal, non_causal = self.decompose(attn)
        return h + self.proj(fuse_variables(fused, weights)), attn, (causal, non_causal)
