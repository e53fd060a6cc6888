"""RED-PSS: the automation stack that runs beside an Exasol data warehouse.

pyexasol 3.x reports every connect to a public endpoint unless EXASOL_TELEMETRY_DISABLE is set. Every process of
RED-PSS imports this package before pyexasol, so setting the variable here keeps all traffic on the machine.
"""

import os

os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")

__version__ = "0.1.0"
