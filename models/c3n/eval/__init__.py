"""Scoring: the AVSBench metrics (``metrics``), exported models on AVSBench-format data
(``evaluate``, ``python -m c3n.evaluate``), label and region accuracy (``labelstats``,
``regionstats``) and the model card's ``metrics.json`` (``report``).
"""
