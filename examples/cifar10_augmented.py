"""CIFAR-10 with augmentation: a population trained from a tf.data pipeline of random flips and
crops, tuning each member's learning rate with PopDescent.

The augmentation draws from stateless random ops whose seeds come from a seeded
`tf.data.Dataset.random`, so the pipeline is deterministic: the same seed gives the same run,
and a run resumed by `pd.BackupAndRestore` re-reads it and skips to the step it had reached.
Needs CIFAR-10 on disk (`POPDESCENT_DATA` or `--data-dir`, see `popdescent.inputs.datasets`).
Usage: python examples/cifar10_augmented.py [--small] [--epochs N] [--data-dir DIR]
`--small` (2,000 training images, 3 iterations of 5 steps, a narrow CNN) runs in seconds.
"""

import argparse

import keras
import tensorflow as tf

import popdescent as pd
from popdescent.inputs.datasets import load_dataset

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="a run of seconds, for tests")
parser.add_argument("--epochs", type=int, default=None, help="PopDescent iterations")
parser.add_argument("--data-dir", default=None, help="directory holding cifar-10-batches-py")
args = parser.parse_args()
small = args.small
epochs = args.epochs or (3 if small else 30)
steps_per_epoch, batch_size, width = (5, 32, 8) if small else (100, 64, 32)

data = load_dataset("cifar10", data_dir=args.data_dir, train_subset=2000 if small else None,
                    download=False)
x_val, y_val = (data.x_val[:500], data.y_val[:500]) if small else (data.x_val, data.y_val)


def augment(example, seed):
    """A random horizontal flip, then a random 32x32 crop of the image padded to 40x40."""
    image, label = example
    image = tf.image.stateless_random_flip_left_right(image, seed)
    padded = tf.image.resize_with_crop_or_pad(image, 40, 40)
    return tf.image.stateless_random_crop(padded, (32, 32, 3), seed[::-1]), label


seeds = tf.data.Dataset.random(seed=1).batch(2)  # one (2,) stateless seed per image
train = (tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
         .shuffle(len(data.x_train), seed=0)
         .apply(lambda images: tf.data.Dataset.zip((images, seeds)))
         .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
         .batch(batch_size)
         .prefetch(tf.data.AUTOTUNE))
validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256)

model = keras.Sequential([
    keras.Input((32, 32, 3)),
    keras.layers.Conv2D(width, 3, activation="relu", padding="same"),
    keras.layers.MaxPooling2D(),
    keras.layers.Conv2D(2 * width, 3, activation="relu", padding="same"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(10),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

pop = pd.Population(model, size=3 if small else 5, seed=0,
                    hyperparameters={"learning_rate": pd.LogUniform(1e-4, 1e-2)})
pop.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=validation,
        callbacks=[pd.PopDescent(elites=1 if small else 2, cv_batch_size=256)],
        verbose=0 if small else "auto")

best = pop.best_model()
loss, accuracy = best.evaluate(data.x_test[:500] if small else data.x_test,
                               data.y_test[:500] if small else data.y_test, verbose=0)
print(f"gradient steps (all members): {pop.gradient_steps}")
print(f"best member's test accuracy: {accuracy:.3f} (loss {loss:.3f})")
print(f"best member's hyperparameters: {pop.hyperparameters_of(pop.best_index())}")
