"""The optional C extension (everything else is in pyproject.toml).

``detector.core.inputs._scan`` reads clean prediction events straight into columns
(:mod:`detector.core.inputs.nativedecode`). It is optional: without a C compiler the package
installs without it and decodes with Arrow's reader or msgspec instead, with the same results.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("detector.core.inputs._scan", ["detector/core/inputs/_scan.c"],
                             extra_compile_args=["-O2"], optional=True)])
