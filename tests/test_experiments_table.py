"""utils.results: the explicit list of experiments, each row where its lesson and task say,
and the table built from them in lesson order."""

from __future__ import annotations

from utils import results
from utils.experiments.common import Result


def test_every_experiment_is_listed_with_its_task_and_lesson() -> None:
    found = {e.name: (e.task, e.lesson) for e in results.experiments()}
    assert found == {
        "gru-sentiment": ("sentiment", "01_sequences_and_rnns"),
        "cnn-sentiment": ("sentiment", "02_convolutional_baselines"),
        "gru-seq2seq": ("translation", "03_seq2seq_rnn"),
        "attention-seq2seq": ("translation", "04_attention_seq2seq"),
        "transformer-sentiment": ("sentiment", "07_transformer_encoder"),
        "transformer-translation": ("translation", "08_transformer_translation"),
        "gpt-translate": ("text-to-text", "09_decoder_only_gpt"),
        "gpt-summarize": ("text-to-text", "09_decoder_only_gpt"),
        "gpt-sentiment": ("text-to-text", "09_decoder_only_gpt"),
    }
    assert len(results.EXPERIMENTS) == len(found), "two experiments share a name"


def test_a_lesson_sees_the_experiments_of_its_task_up_to_itself() -> None:
    up_to_03 = [e.name for e in results.experiments("translation", up_to="03_seq2seq_rnn")]
    assert up_to_03 == ["gru-seq2seq"]
    up_to_06 = [e.name for e in results.experiments("sentiment", up_to="06_multi_head_and_positions")]
    assert up_to_06 == ["gru-sentiment", "cnn-sentiment"]
    up_to_08 = [e.name for e in results.experiments("translation", up_to="08_transformer_translation")]
    assert up_to_08 == ["gru-seq2seq", "attention-seq2seq", "transformer-translation"]


def test_an_unknown_experiment_is_named_with_the_known_ones() -> None:
    try:
        results.run("lstm-sentiment", None, "cpu")
    except KeyError as error:
        assert "lstm-sentiment" in str(error) and "gru-sentiment" in str(error)
    else:
        raise AssertionError("results.run accepted an unknown experiment")


def test_results_table_runs_the_experiments_in_lesson_order() -> None:
    def fake(lesson: str, value: float):
        return lambda profile, device: Result("toy", f"model {lesson}", lesson, "accuracy", value, 10, 0.1,
                                              "toy test")

    toys = (results.Experiment("toy-b", "toy", "02_b", fake("02_b", 0.7)),
            results.Experiment("toy-a", "toy", "01_a", fake("01_a", 0.5)))
    frame = results.table("toy", up_to="01_z", profile=None, device=None, among=toys)
    assert frame["model"].tolist() == ["model 01_a"]
    frame = results.table("toy", up_to="02_b", profile=None, device=None, among=toys)
    assert frame["value"].tolist() == [0.5, 0.7]
