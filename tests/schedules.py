"""Schedules shared by the tests that run the study end to end."""

#: The smallest smoke schedule: one step of everything, for the pipeline tests.
FAST = {
    "steps_per_epoch": 1,
    "validation_steps": 1,
    "epochs_unet": 1,
    "epochs_dncnn": 1,
    "dncnn_keep_epoch": None,
    "epochs_descriptor": 1,
    "epochs_retrain": 1,
    "descriptor_steps_per_epoch": 1,
    "descriptor_validation_steps": 1,
}
