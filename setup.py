"""The one compiled part: JSON2CSV's parser of flat NDJSON records (redpss/convert/_flatjson.c). Everything else
about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "redpss.convert._flatjson",
            ["redpss/convert/_flatjson.c"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra"],
        )
    ]
)
