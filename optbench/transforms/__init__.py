"""Methods that make a new variant from a model (prune, quantize, distill, export)."""
