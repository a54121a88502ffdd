"""Configuration: compose conf/ as python -m train does, with lorakit's resolvers (compose), and one validation pass
that reports every problem with its fix before any model loads (checks). Imports the engines (their registries) and
core."""
