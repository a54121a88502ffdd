"""Models: find a base model (embedded GGUF, hub id, local folder, tiny test model) and load it once for every
caller (loading), and merge an adapter into its base (merge). Imports core only."""
