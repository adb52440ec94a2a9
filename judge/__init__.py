"""outcome-judge verification engine: outcome + rubric + panel -> verdict.

This package is the one place every entry point (CLI, API, workers, tests, benchmarks) imports
before litellm, so it pins litellm to its bundled price map: nothing is ever fetched at run time.
"""

import os

# litellm reads this once, at its own import; setting it here (and nowhere else) guarantees that
# the price map comes from the installed package and that no entry point reaches the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

__version__ = "0.1.0"
