"""Training methods, one module each (supervised, dpo, reinforcement), and the registry the rest of lorakit asks
(lorakit.methods.base). Importing the package registers the built-in methods."""

from lorakit.methods.base import DATA, Hyperparameters, Method, UnknownMethod, get, load_plugins, names, of, register
from lorakit.methods.dpo import Dpo
from lorakit.methods.reinforcement import Reinforcement
from lorakit.methods.supervised import Supervised

__all__ = ["DATA", "Dpo", "Hyperparameters", "Method", "Reinforcement", "Supervised", "UnknownMethod", "get",
           "load_plugins", "names", "of", "register"]
