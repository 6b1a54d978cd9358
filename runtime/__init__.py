"""The fast runtime of checked-rl: PyTorch on CPU or CUDA, batched, shape-checked.

Everything here computes what `spec` defines; the `properties` package checks that it does.
Public functions carry jaxtyping annotations checked by beartype at call time; set the
environment variable `JAXTYPING_DISABLE=1` to switch the checks off.
"""
