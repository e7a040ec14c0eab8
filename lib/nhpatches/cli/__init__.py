"""Command-line entry points: ``hpatches-eval`` (:mod:`.eval`) and ``hpatches-describe`` (:mod:`.describe`)."""
