"""One sub-package per scorer: network, losses, scorer (training step and
scoring rule) and estimator."""
