"""The README's main example: the original study end to end."""

import sys
from pathlib import Path

import matplotlib.image
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_zillow_study_reproduces_the_ordering_and_writes_figures(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("zillow_study", None)
    import zillow_study

    table = zillow_study.main(["--output-dir", str(tmp_path)]).set_index("model")["validation MAE"]
    linear = table["Bayesian linear regression"]
    intercepts = table["+ zip random intercepts"]
    network = table["MLP + zip random intercepts"]
    assert intercepts < linear < table["training mean (constant)"]
    assert network <= intercepts
    for name in ["prior_posterior_fit.png", "shrinkage.png", "elbo_curves.png"]:
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] >= 300 and image.shape[1] >= 500
        assert image.std() > 0.05  # not a blank canvas
