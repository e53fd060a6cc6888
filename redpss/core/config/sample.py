"""Renders red_params.conf from the schema: the shipped sample and the file `redsysctl create` writes.

Because the sample is rendered, it cannot drift from the keys the loader accepts; a test compares it with
etc/red_params.conf.sample.
"""

from __future__ import annotations

from redpss.core.config.kinds import Kind
from redpss.core.config.schema import INHERITED_FROM_DEFAULT, REQUIRED, SECTIONS, section_fields

HEADER = """\
# red_params.conf: configuration of one RED-PSS instance ($REDENV_HOME/etc/red_params.conf).
# Keep this file mode 0600: it holds passwords, and RED-PSS refuses to start while group or others may read it.
# Every key is shown with its default; a commented key keeps the default. Check the file with: redinfo --check
# A '#' after a blank starts a comment, also after a value; put a password holding ' #' in quotes: "pa #ss".
"""


def render_config(overrides: dict[str, dict[str, str]] | None = None) -> str:
    """The full config text with every key documented; `overrides` (section -> key -> text) are set uncommented."""
    overrides = overrides or {}
    lines = [HEADER]
    for section, cls in SECTIONS.items():
        lines.append(f"[{section}]")
        lines.append(f"# {(cls.__doc__ or '').strip().split(': ', 1)[-1]}")
        for field in section_fields(section):
            kind: Kind = field.metadata["kind"]
            lines.append(f"# {field.metadata['doc']}")
            if field.name in overrides.get(section, {}):
                lines.append(f"{field.name} = {overrides[section][field.name]}")
            elif field.default is REQUIRED and (section == "DEFAULT" or field.name not in INHERITED_FROM_DEFAULT):
                lines.append(f"{field.name} = ")
            elif field.default is REQUIRED:
                lines.append(f"#{field.name} = (from [DEFAULT])")
            else:
                lines.append(f"#{field.name} = {kind.render(field.default)}")
        lines.append("")
    return "\n".join(lines)
