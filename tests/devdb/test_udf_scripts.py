"""The scripts db_install creates (redpss/sql/udf/scripts.py): stdlib-only bodies that devdb and Exasol both accept."""

from __future__ import annotations

import ast
import sys

import pytest

from redpss.devdb.systables import KEYWORDS
from redpss.devdb.udf_parse import CreateScript, parse_script_statement
from redpss.sql.udf.scripts import UDF_SCRIPTS, UdfScript


@pytest.mark.parametrize("script", UDF_SCRIPTS, ids=lambda s: s.name)
def test_each_script_is_one_python3_scalar_statement_whose_body_imports_only_the_standard_library(
    script: UdfScript,
) -> None:
    statement = script.statement()
    parsed = parse_script_statement(statement)
    assert isinstance(parsed, CreateScript)
    assert (parsed.schema, parsed.name, parsed.replace) == ("REDSYS", script.name, True)
    tree = ast.parse(parsed.body)
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "redpss" not in imported
    assert imported <= set(sys.stdlib_module_names), imported
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"run", "cleanup"} <= defined
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ctx"
    }
    assert used <= {p.name for p in parsed.parameters}, "run(ctx) reads only the declared parameters"
    assert "\n/\n" not in statement  # the driver sends no EXAplus terminator
    reserved = {p.name.upper() for p in parsed.parameters} & set(KEYWORDS)
    assert not reserved, f"reserved words in Exasol, a syntax error there: {reserved}"


def test_the_script_table_names_each_script_once() -> None:
    names = [script.name for script in UDF_SCRIPTS]
    assert len(names) == len(set(names)) and {"PSS_LOG", "PSS_EXEC"} <= set(names)
