"""utils.models.layer_costs: Table 1 of Vaswani et al. (2017), measured (lesson 05)."""

from __future__ import annotations

import math

import pytest
import torch

from utils.models import layer_costs
from utils.models.layer_costs import (
    KINDS,
    count_flops,
    critical_path_length,
    growth_exponent,
    layer_flops,
    make_layer,
    path_length,
    sequential_operations,
)


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_maps_a_sequence_to_a_sequence_of_the_same_shape(kind: str) -> None:
    x = torch.randn(2, 9, 8)
    assert make_layer(kind, 8, num_layers=2)(x).shape == (2, 9, 8)


def test_an_unknown_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="recurrent"):
        make_layer("transformer", 8)


def test_count_flops_counts_a_matmul_as_two_flops_per_multiply_add() -> None:
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    assert count_flops(lambda: a @ b) == 2 * 3 * 4 * 5


def test_count_flops_ignores_elementwise_work() -> None:
    x = torch.randn(100)
    assert count_flops(lambda: x.exp().sin() + 1) == 0


def test_recurrent_flops_are_two_d_by_d_products_per_token() -> None:
    n, d = 20, 8
    assert layer_flops("recurrent", n, d) == n * 2 * (2 * d * d)


def test_convolution_flops_are_k_n_d_squared() -> None:
    n, d, k = 20, 8, 5
    assert layer_flops("convolutional", n, d, kernel_size=k) == 2 * k * n * d * d


def test_self_attention_flops_are_projections_plus_two_n_by_n_products() -> None:
    n, d = 20, 8
    projections = 4 * 2 * n * d * d  # q, k, v and output
    scores_and_mix = 2 * (2 * n * n * d)  # q kᵀ and weights @ v
    assert layer_flops("self-attention", n, d) == projections + scores_and_mix


def test_growth_exponent_recovers_a_power_law() -> None:
    xs = [2, 4, 8, 16]
    assert growth_exponent(xs, [3 * x**2 for x in xs]) == pytest.approx(2.0)
    assert growth_exponent(xs, [7.0] * 4) == pytest.approx(0.0)


def test_critical_path_counts_a_chain_of_operations() -> None:
    x = torch.randn(3, requires_grad=True)
    one = critical_path_length(x.sin())
    assert critical_path_length(x.sin().cos().exp()) == one + 2


def test_critical_path_takes_the_longest_branch_not_the_sum() -> None:
    x = torch.randn(3, requires_grad=True)
    long_branch = x.sin().cos().exp()
    assert critical_path_length(long_branch + x.sin()) == critical_path_length(long_branch) + 1


def test_critical_path_needs_a_graph() -> None:
    with pytest.raises(ValueError, match="requires_grad"):
        critical_path_length(torch.randn(3))


def test_a_recurrent_layer_adds_the_same_number_of_steps_per_token() -> None:
    steps = [sequential_operations("recurrent", n) for n in (8, 16, 32)]
    assert steps[2] - steps[1] == 2 * (steps[1] - steps[0]) > 0


@pytest.mark.parametrize("kind", ["self-attention", "convolutional", "dilated convolutional"])
def test_parallel_layers_have_a_critical_path_independent_of_length(kind: str) -> None:
    assert sequential_operations(kind, 8) == sequential_operations(kind, 64)


@pytest.mark.parametrize("n", [8, 16])
def test_path_lengths_match_the_paper(n: int) -> None:
    assert path_length("self-attention", n) == 1
    assert path_length("recurrent", n) == n
    assert path_length("convolutional", n) == math.ceil((n - 1) / 2)  # causal, kernel 3
    assert path_length("dilated convolutional", n) == math.ceil(math.log2((n + 1) / 2))


def test_paper_table_has_a_row_for_every_kind() -> None:
    assert set(layer_costs.PAPER_TABLE) == set(KINDS)
    assert all(len(row) == len(layer_costs.PAPER_COLUMNS) for row in layer_costs.PAPER_TABLE.values())
