"""The course's models, one concept per module (imported on demand, so this stays instant).

- `utils.models.rnn`: an RNN cell from scratch, `SimpleRNN`, the GRU classifier (lesson 01).
- `utils.models.cnn`: dilated 1-D convolutions, receptive fields, the CNN classifier (02).
- `utils.models.seq2seq`: GRU encoder-decoder, Bahdanau and Luong attention (03, 04).
- `utils.models.attention`: scaled dot-product attention, masks, `MultiHeadAttention`,
  and the FlashAttention algorithm in PyTorch (lessons 05, 06 and 10).
- `utils.models.positions`: sinusoidal, learned and rotary positions (lesson 06).
- `utils.models.transformer`: feed-forward, encoder and decoder blocks, token embedding (07-12).
- `utils.models.encoder_classifier`: the Transformer encoder classifier (lesson 07).
- `utils.models.translation_transformer`: the encoder-decoder `Transformer` (lesson 08).
- `utils.models.gpt`: the decoder-only `GPT` with a KV cache (lessons 09 and 12).
- `utils.models.triton_attention`: FlashAttention's forward and backward passes as Triton kernels
  (lesson 10; needs Triton, and a GPU or `TRITON_INTERPRET=1`).
"""
