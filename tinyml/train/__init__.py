"""Training: the model zoo, the fit loop, metrics and plots (TensorFlow imported lazily)."""
