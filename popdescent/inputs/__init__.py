"""Input: what `fit` accepts (arrays, tf.data, PyDatasets, generators), checked and fed as each
iteration's batches; the FMNIST and CIFAR-10 loaders. Imports `popdescent.validation` only."""
