"""What the visible checks compare against, kept out of the check cells: one module per lesson.

A check cell reads as a specification (what is checked, and why); the expected values come from
the exercise's reference in `utils`, and the outputs of classic mistakes, which hints compare a
student's output against, come from here: `expected.lesson05.attention_weight_mistakes(q, k, v)`
is a dict from a hint's text to the output that mistake gives.
"""
