"""Training on several processes with PyTorch's own distributed stack (lessons 11 and 12).

One concept per module, imported on demand:

- `utils.distributed.env`: join the process group that `torchrun` describes (rank, world
  size, backend, device), or make a group of one process when there is no `torchrun`.
- `utils.distributed.collectives`: all-reduce from first principles (the ring algorithm,
  simulated), gradient averaging with `all_reduce`, and `simulate`, which runs N ranks as
  N threads of this process so that notebooks can check multi-rank code in milliseconds.
- `utils.distributed.launch`: run a script under `torchrun` from a notebook or a test,
  stream its output, and return the metrics it wrote; one or several simulated nodes.
- `utils.distributed.train`: the training script `torchrun` runs (DDP, FSDP, or gradients
  averaged by hand; mixed precision, gradient accumulation, checkpoints, resume).
- `utils.distributed.checkpoint`: atomic, step-numbered checkpoints and the rules for
  resuming one, also with another number of processes.
- `utils.distributed.text_data`: the capstone's text-to-text data, packed into equal sequences.
- `utils.distributed.tensor_parallel`: attention with its heads split across ranks.
- `utils.distributed.verify`: multi-process checks of the above, run under `torchrun`.

`python -m utils.bench ddp` measures throughput and scaling efficiency with the same script.

Shape letters as everywhere in the course: B batch, T length, H heads, D model width,
Dh head width; N is the world size (the number of ranks).
"""
