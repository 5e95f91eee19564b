"""utils.models.transformer: blocks agree with PyTorch's and respect their masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utils.models.transformer import CausalSelfAttentionBlock, DecoderBlock, EncoderBlock, TokenEmbedding


def _copy_into_torch_layer(block: EncoderBlock, layer: nn.TransformerEncoderLayer) -> None:
    layer.self_attn.load_state_dict(block.self_attn.to_torch().state_dict())
    layer.linear1.load_state_dict(block.feed_forward.net[0].state_dict())
    layer.linear2.load_state_dict(block.feed_forward.net[3].state_dict())
    layer.norm1.load_state_dict(block.attn_branch.norm.state_dict())
    layer.norm2.load_state_dict(block.ff_branch.norm.state_dict())


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_encoder_block_equals_torch_encoder_layer(norm_first: bool) -> None:
    torch.manual_seed(0)
    block = EncoderBlock(16, 4, 32, norm_first=norm_first).eval()
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True,
                                       norm_first=norm_first).eval()
    _copy_into_torch_layer(block, layer)
    x = torch.randn(3, 7, 16)
    token_mask = torch.arange(7)[None, :] < torch.tensor([7, 5, 2])[:, None]  # (B, T)
    ours = block(x, token_mask)
    theirs = layer(x, src_key_padding_mask=~token_mask)  # PyTorch: True = padding
    real = token_mask[..., None]
    torch.testing.assert_close(ours * real, theirs * real, atol=1e-5, rtol=1e-4)


def test_padding_never_changes_real_positions() -> None:
    torch.manual_seed(0)
    block = EncoderBlock(16, 4, 32).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    torch.testing.assert_close(block(padded, mask)[:, :5], block(x), atol=1e-5, rtol=1e-4)


def test_decoder_block_never_looks_at_future_targets() -> None:
    torch.manual_seed(0)
    block = DecoderBlock(16, 4, 32).eval()
    y, memory = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    changed = y.clone()
    changed[:, 4:] = torch.randn(2, 2, 16)
    torch.testing.assert_close(block(y, memory)[:, :4], block(changed, memory)[:, :4])


def test_token_embedding_offset_continues_the_positions() -> None:
    embed = TokenEmbedding(20, 8, max_len=16).eval()
    ids = torch.randint(1, 20, (2, 6))
    torch.testing.assert_close(embed(ids)[:, 4:], embed(ids[:, 4:], offset=4))


def test_a_rotary_block_sees_order_where_a_plain_block_is_permutation_equivariant() -> None:
    torch.manual_seed(0)
    plain = EncoderBlock(16, 4, 32).eval()
    rotary = EncoderBlock(16, 4, 32, rotary=True).eval()
    rotary.load_state_dict(plain.state_dict())  # same weights: only the rotation differs
    x, perm = torch.randn(2, 7, 16), torch.randperm(7)
    with torch.no_grad():
        assert torch.allclose(plain(x)[:, perm], plain(x[:, perm]), atol=1e-5)
        assert not torch.allclose(rotary(x)[:, perm], rotary(x[:, perm]), atol=1e-3)
        assert not torch.allclose(rotary(x), plain(x), atol=1e-3)


def test_token_embedding_without_positions_is_the_scaled_token_vector() -> None:
    embed = TokenEmbedding(20, 8, positions="none")
    ids = torch.tensor([[3, 4, 5]])
    assert torch.equal(embed(ids), embed.tokens(ids) * 8**0.5)
    assert not any(name.startswith("positions") for name, _ in embed.named_parameters())
    with pytest.raises(ValueError, match="'sinusoidal', 'learned' or 'none'"):
        TokenEmbedding(20, 8, positions="rotary")


def test_the_causal_block_has_the_encoder_blocks_parameters_and_hides_the_future() -> None:
    torch.manual_seed(0)
    causal, plain = CausalSelfAttentionBlock(16, 4, 32).eval(), EncoderBlock(16, 4, 32).eval()
    assert list(causal.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 6, 16)
    changed_last = torch.cat([x[:, :-1], torch.randn(2, 1, 16)], dim=1)
    torch.testing.assert_close(causal(changed_last)[:, :-1], causal(x)[:, :-1])
