"""The reference semantics of checked-rl, in pure NumPy.

Every definition here is written to be read: plain loops over time, the equation in the
docstring, a doctest worked by hand. The runtime computes the same things fast and is checked
against this package by the properties.
"""
