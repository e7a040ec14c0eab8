"""Networks: the models, losses and specs of the study, the classical descriptors, inference."""

from nhpatches.core.backend import quiet_tensorflow

quiet_tensorflow()
