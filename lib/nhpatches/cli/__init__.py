"""Command-line entry points and what the scripts run.

``hpatches-eval`` (:mod:`.eval`), ``hpatches-describe`` (:mod:`.describe`), ``hpatches-match``
(:mod:`.match`), ``hpatches-match-bench`` (:mod:`.match_bench`), the model card's real-sample check
(:mod:`.real_sample`, ``scripts/real_sample_check.py``) and the export of a study pipeline
(:mod:`.export_study`, ``scripts/export_pretrained.py``).
"""
