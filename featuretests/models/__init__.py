"""Models: names, hook points, neuron ids and loading (TransformerLens is imported only inside functions)."""
