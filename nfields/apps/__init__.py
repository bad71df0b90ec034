"""Tasks built on the engine: coordinate fitting (images, SDFs), PVD-AL distillation, tri-plane classifiers."""
