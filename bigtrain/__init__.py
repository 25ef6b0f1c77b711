"""bigtrain: config-driven training of TensorFlow/Keras models.

Importing the package is cheap on purpose: TensorFlow is imported only by the modules that
build and train (data, models, optim, train), never by the CLI's help, ls, show or validate.
"""

import time as _time

__version__ = "0.1.0"

#: when this process imported bigtrain: a `bigtrain` command's start (summary.json's timing)
IMPORTED_AT = _time.time()
