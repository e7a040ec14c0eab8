"""Command-line entry points: ``hpatches-eval`` (:mod:`.eval`), ``hpatches-describe`` (:mod:`.describe`) and ``hpatches-match`` (:mod:`.match`)."""
