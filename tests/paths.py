"""Where the test suites find the repository and the read-only ``shared/`` folder.

``shared/`` sits beside the checkout (``../shared``), in CI as on developer machines;
``CONSENTGATE_SHARED_DIR`` overrides it.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CONSENTGATE_SHARED_DIR", ROOT.parent / "shared"))
TESTDATA = SHARED / "testdata"
