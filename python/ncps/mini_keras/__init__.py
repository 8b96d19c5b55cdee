"""A small Keras-like front end for ncps: ``Sequential`` models of CfC, LTC and dense layers.

.. code-block:: python

    from ncps import mini_keras as keras
    from ncps.wirings import AutoNCP

    model = keras.models.Sequential([
        keras.layers.InputLayer((None, 2)),             # (time, features); batch axis implied
        keras.layers.CfC(AutoNCP(16, 1), return_sequences=True),
    ])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.summary()
    history = model.fit(x, y, epochs=50, batch_size=16, validation_split=0.1)
    model.evaluate(x_test, y_test)
    y_hat = model.predict(x_test)                       # an mx.array
    model.save("model.safetensors")
    model = keras.models.load_model("model.safetensors")

Irregularly sampled data: pass ``(x, timespans)`` or ``(x, timespans, mask)`` wherever ``x`` goes.
Training runs through :func:`ncps.training.fit` (progress bar, validation, callbacks).
"""

from . import activations, callbacks, layers, losses, metrics, models
from .models import Sequential, load_model

__all__ = ["Sequential", "load_model", "layers", "models", "losses", "metrics", "callbacks", "activations"]
