"""bigtrain: config-driven training of TensorFlow/Keras models.

Importing the package is cheap on purpose: TensorFlow is imported only by the modules that
build and train (data, models, optim, train), never by the CLI's help, ls, show or validate.
"""

__version__ = "0.1.0"
