"""Every lesson under the grading path: its solution scores full marks, its student version zero,
and a version whose every exercise delegates to what its check forbids scores zero, flagged.

Parametrized over `lessons()`, so a new lesson is covered as soon as it exists in solutions/.
One class of three submissions per lesson, graded in parallel by `course_tools.grading.grade.grade`, the
function behind `python -m course_tools grade` (called in-process: its worker processes are
then forked from one server for all lessons, instead of one per command).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_tools.config import lessons, solution_path, student_path
from course_tools.grading import report
from course_tools.grading.grade import Options, grade

pytestmark = pytest.mark.slow

# What a student who wants the marks without the work writes: each exercise's body replaced by
# a call of what its check cell forbids (through an alias, an import inside the function or a
# subclass, as such code does). Keyed by lesson, then by the exercise cell's grade_id.
DELEGATIONS: dict[str, dict[str, str]] = {
    "00_course_tour": {
        "attention_scores": "from utils.models.attention import attention_scores as scores\n"
                            "return scores(q, k, scale=1.0)",
        "padding_mask": "from utils.models import attention\n"
                        "return attention.padding_mask(lengths, max_len)[:, 0, 0]",
        "stable_softmax": "return x.softmax(dim)",
        "multihead_scores": "from utils.models import attention\nreturn attention.attention_scores(q, k)",
    },
    "01_sequences_and_rnns": {
        "encode_batch": "from utils.data import pad\nreturn pad([vocab.encode(t) for t in texts])",
        "rnn_cell": "return torch.rnn_tanh_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh)",
        "rnn_forward": "rnn = SimpleRNN(x.shape[-1], h0.shape[-1])\nrnn.cell = cell\nreturn rnn(x, h0)",
        "last_real_state": "from utils.models.rnn import last_real\nreturn last_real(outputs, mask)",
    },
    "02_convolutional_baselines": {
        "causal_conv1d": "return utils.models.cnn.causal_conv1d(x, weight, bias, dilation)",
        "receptive_field": "return reference_receptive_field(kernel_size, dilations)",
        "reach_by_gradient": "return reachable_inputs(encoder, seq_len, position, d_model)",
        "doubling_dilations": "from utils.models.cnn import doubling_dilations as reference\n"
                              "return reference(length, kernel_size)",
    },
    "03_seq2seq_rnn": {
        "shift_right": "from utils.data.batching import shift_right as reference\n"
                       "return reference(tgt_out, bos_id, eos_id, pad_id)",
        "sequence_loss": "return utils.models.seq2seq.sequence_loss(logits, tgt_out, pad_id)",
        "greedy_translate": "return decoding.greedy_decode(step, state, batch_size=batch_size,\n"
                            "    bos_id=bos_id, eos_id=eos_id, max_len=max_len, pad_id=pad_id,\n"
                            "    device=device)",
        "corpus_bleu": "return metrics.bleu(hypotheses, references)",
    },
    "04_attention_seq2seq": {
        "additive_scores": "attn = AdditiveAttention(query.shape[-1], keys.shape[-1], v.shape[0])\n"
                           "attn = attn.to(query.dtype)\n"
                           "with torch.no_grad():\n"
                           "    attn.query_proj.weight.copy_(w_query)\n"
                           "    attn.key_proj.weight.copy_(w_key)\n"
                           "    attn.key_proj.bias.copy_(b_key)\n"
                           "    attn.v.weight[0].copy_(v)\n"
                           "return attn.scores(query, keys)",
        "dot_scores": "attn = DotProductAttention(query.shape[-1], keys.shape[-1]).to(query.dtype)\n"
                      "with torch.no_grad():\n"
                      "    attn.key_proj.weight.copy_(w)\n"
                      "return attn.scores(query, keys)",
        "attend": "weights = masked_softmax(scores, mask)\nreturn weights @ values, weights",
        "alignment_accuracy": "return alignment_agreement(weights, alignment)",
    },
    "05_self_attention": {
        "scaled_dot_product_attention": "sdpa = attention.scaled_dot_product_attention\nreturn sdpa(q, k, v)",
        "causal_mask": "return attention.causal_mask(seq_len)",
        "masked_attention": "return attention.scaled_dot_product_attention(q, k, v, mask=mask)",
        "SelfAttention": "q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)\n"
                         "return attention.scaled_dot_product_attention(q, k, v, mask=mask)",
    },
    "06_multi_head_and_positions": {
        "split_heads": "return attention.split_heads(x, num_heads)",
        "merge_heads": "return attention.merge_heads(x)",
        "MultiHeadAttention": "mha = attention.MultiHeadAttention(self.d_model, self.num_heads)\n"
                              "mha.load_state_dict(self.state_dict())\n"
                              "return mha(query, key, value, mask=mask)",
        "sinusoidal_encoding": "return positions.sinusoidal_positional_encoding(seq_len, d_model)",
        "rotate_pairs": "return positions.apply_rotary_embedding(x, cos, sin)",
    },
    "07_transformer_encoder": {
        "layer_norm": "return F.layer_norm(x, x.shape[-1:], weight, bias, eps)",
        "residual": "from utils.models.transformer import _Residual\n"
                    "block = _Residual(x.shape[-1], 0.0, norm_first)\n"
                    "block.norm = norm\n"
                    "return block(x, sublayer)",
        "PreNormEncoderBlock": "heads = self.self_attn.num_heads\n"
                               "block = EncoderBlock(x.shape[-1], heads, 1, norm_first=True)\n"
                               "block.self_attn, block.feed_forward = self.self_attn, self.feed_forward\n"
                               "block.attn_branch.norm, block.ff_branch.norm = self.norm1, self.norm2\n"
                               "return block(x, token_mask)",
        "masked_mean_pool": "from utils.models.encoder_classifier import masked_mean\n"
                            "return masked_mean(h, token_mask)",
    },
    "08_transformer_translation": {
        "decoder_layer": "block = DecoderBlock(y.shape[-1], self.self_attn.num_heads, 1)\n"
                         "block.self_attn, block.cross_attn = self.self_attn, self.cross_attn\n"
                         "block.feed_forward = self.feed_forward\n"
                         "block.self_branch.norm, block.cross_branch.norm, block.ff_branch.norm = "
                         "self.norm1, self.norm2, self.norm3\n"
                         "return block(y, memory, memory_mask=memory_mask)",
        "label_smoothed_loss": "return F.cross_entropy(logits.flatten(0, 1), targets.flatten(),\n"
                               "    ignore_index=ignore_index, label_smoothing=smoothing)",
        "warmup_lr": "from utils.models.translation_transformer import warmup_lr as reference\n"
                     "return reference(step, d_model, warmup_steps, factor)",
        "train_steps": "from utils.training import train_steps as reference\n"
                       "return reference(model, batches, optimizer, scheduler, loss_fn, clip_norm)",
        "beam_search": "from utils.beam_search import beam_search as reference\n"
                       "return reference(step, state, batch_size=batch_size, bos_id=bos_id, eos_id=eos_id, "
                       "max_len=max_len,\n                 beam_size=beam_size, alpha=alpha, pad_id=pad_id, "
                       "device=device)",
    },
    "09_decoder_only_gpt": {
        "answer_loss": "return text_to_text.answer_loss(model, batch)",
        "gpt_parameter_count": "return count_parameters(GPT(c))",
        "sample_next": "from utils.sampling import sample_next as reference\n"
                       "return reference(logits, temperature, top_k, generator)",
        "cached_attention": "from utils.models.gpt import cached_self_attention\n"
                            "return cached_self_attention(attn, x, past)",
        "GPTBlock": "block = gpt_block(x.shape[-1], self.self_attn.num_heads,"
                    " self.feed_forward.net[0].out_features)\n"
                    "block.self_attn, block.feed_forward = self.self_attn, self.feed_forward\n"
                    "block.attn_branch.norm, block.ff_branch.norm = self.norm1, self.norm2\n"
                    "return block(x)",
    },
    "10_efficient_attention": {
        "score_matrix_bytes": "return memory.score_matrix_bytes(batch, heads, length, dtype)",
        "online_softmax_update": "return attention.online_softmax_update(m, l, acc, scores, v_block)",
        "blocked_attention": "return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)",
        "key_blocks": "return attention.key_blocks(q_start, q_end, seq_len_k, block_size, is_causal)",
    },
    "11_data_parallel_training": {
        "ring_all_reduce": "summed = collectives.ring_all_reduce(tensors)\n"
                           "chunks = [list(t.flatten().clone().tensor_split(n)) for t in summed]",
        "average_gradients": "collectives.average_gradients(model)",
        "rank_indices": "from torch.utils.data import DistributedSampler\n"
                        "sampler = DistributedSampler(range(num_samples), num_replicas=world_size,\n"
                        "                             rank=rank, shuffle=True, seed=seed)\n"
                        "sampler.set_epoch(epoch)\n"
                        "return list(sampler)",
        "training_memory": "return train.expected_memory(num_params, world_size, strategy)",
    },
    "12_capstone_multi_gpu_transformer": {
        "accumulate_gradients": "return train.accumulate_gradients(model, micro_batches, loss_fn)",
        "save_checkpoint": "from utils.training import atomic_save\natomic_save(state, Path(path))",
        "restore_checkpoint": "state = torch.load(path, map_location=\"cpu\")\n"
                              "train.load_full_state(model, optimizer, state, train.TrainConfig())\n"
                              "return int(state[\"step\"])",
        "tensor_parallel_attention": "return mha(x, x, x, is_causal=is_causal, need_weights=False)[0]",
    },
    "13_language_models": {
        "count_pairs": "from utils.expected import lesson13\nreturn lesson13.pair_counts(words)",
        "merge": "from utils.data.bpe import merge\nreturn merge(ids, pair, new_id)",
        "top_p_filter": "from utils.sampling import top_p_filter as reference\nreturn reference(logits, p)",
        "grouped_query_attention": "group = q.shape[1] // k.shape[1]\n"
                                   "return F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1),\n"
                                   "    v.repeat_interleave(group, 1), is_causal=is_causal)",
        "sliding_window_mask": "return attention.sliding_window_mask(seq_len, window)",
    },
}


def delegating_version(lesson: str) -> nbformat.NotebookNode:
    """The student version with every stub replaced by its delegation (at the stub's indentation)."""
    nb = nbformat.read(student_path(lesson), as_version=4)
    bodies = DELEGATIONS[lesson]
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        stub = re.search(r"^( *)raise NotImplementedError\(\)$", cell.source, re.M)
        assert stub and grade_id in bodies, f"{lesson}: no delegation for exercise {grade_id}"
        body = "\n".join(stub[1] + line if line else line for line in bodies[grade_id].splitlines())
        cell.source = cell.source[:stub.start()] + body + cell.source[stub.end():]
    return nb


def exercise_names(lesson: str) -> list[str]:
    source = nbformat.read(solution_path(lesson), as_version=4)
    checks = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")]
    return [m[1] for c in checks for m in [re.search(r'checks\.exercise\("(\w+)"', c.source)] if m]


@pytest.mark.parametrize("lesson", lessons())
def test_solution_scores_full_marks_and_student_version_zero(lesson: str, tmp_path: Path) -> None:
    for student, source in (("solution", solution_path(lesson)), ("student", student_path(lesson))):
        (tmp_path / "submissions" / student).mkdir(parents=True)
        shutil.copy(source, tmp_path / "submissions" / student)
    (tmp_path / "submissions" / "delegating").mkdir()
    nbformat.write(delegating_version(lesson), tmp_path / "submissions" / "delegating" / f"{lesson}.ipynb")
    # no canary: the solution is one of the submissions, graded beside the others
    options = Options(lesson, tmp_path / "submissions", tmp_path / "out", jobs=2, canary=False)
    book = grade(options).set_index("student_id")

    # written answers wait for the formgrader (tests/test_grading_written.py); left blank, they score 0
    source = nbformat.read(solution_path(lesson), as_version=4)
    written = report.written_answers(source)
    by_hand = sum(points for grade_id, points in report.exercises(source) if grade_id in written)
    answered = report.MANUAL if written else report.GRADED
    assert book["status"].to_dict() == {"solution": answered, "student": report.GRADED,
                                        "delegating": report.GRADED}, book["reason"].to_dict()
    assert book.loc["solution", "max_score"] > 0
    assert book.loc["solution", "total"] == book.loc["solution", "max_score"] - by_hand, \
        book.loc["solution"].to_dict()
    assert "delegated" not in book.loc["solution", "flags"], book.loc["solution", "flags"]
    assert book.loc["student", "total"] == 0, book.loc["student"].to_dict()
    # every exercise delegated: each one flagged, and each scores 0 (the default, --delegation zero)
    flags = book.loc["delegating", "flags"]
    missed = [n for n in exercise_names(lesson) if f"delegated: {n} -> " not in flags]
    assert not missed, (missed, flags)
    assert book.loc["delegating", "total"] == 0, book.loc["delegating"].to_dict()
    assert (tmp_path / "out" / "gradebook.csv").is_file() and (tmp_path / "out" / "summary.csv").is_file()
