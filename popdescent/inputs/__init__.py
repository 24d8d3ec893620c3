"""Input: what `fit` accepts (arrays, tf.data, PyDatasets, generators), fed as each iteration's
batches; the FMNIST and CIFAR-10 loaders. May import popdescent.validation only."""
