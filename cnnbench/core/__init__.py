"""The bottom layer: what every other package shares and nothing in it imports back up.

- :mod:`~cnnbench.core.vocab`: each knob's vocabulary (``pool``, ``padding``, ``precision`` ...)
  as a ``Literal`` alias, defined once; validation, ``--help`` choices, error hints, summary names
  and report references derive from it.
- :mod:`~cnnbench.core.choices`: checking a value against a vocabulary, and the "did you mean" hint.
- :mod:`~cnnbench.core.signature`: which keyword arguments a class or function accepts.
- :mod:`~cnnbench.core.atomic`: writing a file so that a reader never sees half of it.
- :mod:`~cnnbench.core.registry`: the name → class registry behind models and data sets.
- :mod:`~cnnbench.core.compat`: the supported version range of torch and Lightning.
- :mod:`~cnnbench.core.images`: the one rule for greyscale vs colour images.

Nothing here imports torch or Lightning at module level.
"""
