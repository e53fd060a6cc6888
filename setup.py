"""The one compiled part: JSON2CSV's parser of flat NDJSON records (redpss/convert/_flatjson.c). Everything else
about the package is in pyproject.toml.

Optional: where no compiler is at hand (the system tests' container, which runs the checkout's own build) the
package installs without it and JSON2CSV reads every block with pyarrow, slower but the same. Where it must be
there, its absence fails: tests/convert/test_flatjson.py in the checkout, rpm/redpss.spec's %install in the RPM."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "redpss.convert._flatjson",
            ["redpss/convert/_flatjson.c"],
            optional=True,
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra"],
        )
    ]
)
