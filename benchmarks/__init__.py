"""On-demand benchmarks: upstream trollmoves 0.19.0 against ours, side by side.

Run ``python -m benchmarks [scenario ...] [--quick]`` (or ``make bench``). Not part of the
test suite: nothing here asserts; it measures and reports against the targets.
"""
