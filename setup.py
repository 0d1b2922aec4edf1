"""The one compiled module: the redactor's text lane in C (``siem_pipeline._credlane``).

Everything else is in pyproject.toml. The extension is optional: where no C compiler is found the build goes on
without it and the redactor uses its Python lane (same results, several times slower; ``Redactor.native`` says
which runs). ``SIEM_PURE_PYTHON=1`` leaves it out on purpose (the operator's image, which never redacts).
"""

import os

from setuptools import Extension, setup

native = os.environ.get("SIEM_PURE_PYTHON", "").lower() not in ("1", "true", "yes")
lane = Extension("siem_pipeline._credlane", ["functions/siem_pipeline/_credlane.c"], optional=True,
                 extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra", "-Wno-missing-field-initializers"])
setup(ext_modules=[lane] if native else [])
