"""Benchmarks of airflow-provider-sms against baselines measured in the same run.

Run everything with ``python -m benchmarks`` (see ``python -m benchmarks --help`` and RESULTS.md).
Not part of the test suite: the numbers depend on the machine, so every figure is printed as a ratio
to a baseline measured a moment before on the same machine.
"""
