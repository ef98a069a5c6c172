"""Every shipped scenario on the standard book gives the stored results.

The fingerprints pin every count and text exactly and every floating-point variable to
1e-9 relative (tests/digests.py says why not bitwise across machines); a move, refactor or
speed-up must not change them. See tests/digests.py for how a model correction rewrites them.
"""

import json
import warnings

from digests import RUNS, STORE, compute, differences

from stresslab import StresslabWarning


def test_results_as_stored():
    stored = json.loads(STORE.read_text())
    assert set(stored) == set(RUNS), "tests/data/result_digests.json lists other runs than tests/digests.py"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StresslabWarning)  # pooling the synthetic book saves little: said, not tested here
        now = compute()
    changed = {name: differences(now[name], stored[name]) for name in RUNS}
    changed = {name: what for name, what in changed.items() if what}
    assert not changed, f"results changed: {changed}; if intended, run python tests/digests.py --write"
