"""Data package: the weight registry (registry.json) and the weights this project trained itself."""
