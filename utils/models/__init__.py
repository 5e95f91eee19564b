"""The course's models, one concept per module (imported on demand, so this stays instant).

- `utils.models.attention`: scaled dot-product attention, masks, `MultiHeadAttention`,
  and the FlashAttention algorithm in PyTorch (lessons 05, 06 and 10).
- `utils.models.positions`: sinusoidal, learned and rotary positions (lesson 06).
- `utils.models.triton_attention`: the FlashAttention forward pass as a Triton kernel
  (lesson 10; needs Triton, and a GPU or `TRITON_INTERPRET=1`).
"""
