"""Training: host batches, device sampling and the fit loop of the study's models."""

from nhpatches.core.backend import quiet_tensorflow

quiet_tensorflow()
