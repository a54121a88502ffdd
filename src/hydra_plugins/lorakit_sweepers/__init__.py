"""lorakit's Hydra sweepers (conf/hydra/sweeper): grid (the default) and Optuna. Hydra loads sweepers only from the
hydra_plugins package; the logic they share with the pipeline is in lorakit.sweeps."""
