"""The examples end to end: the README's main study and the random-slopes example."""

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
    # every sale, the missing values modelled: as good on the complete validation rows
    # (measured 0.08641 against 0.08643)
    assert abs(table["+ zip random intercepts, every row"] - intercepts) < 0.005 * intercepts
    for name in ["prior_posterior_fit.png", "shrinkage.png", "residuals.png"]:
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] >= 300 and image.shape[1] >= 500
        assert image.std() > 0.05  # not a blank canvas


@pytest.mark.slow
def test_sleepstudy_example_prefers_slopes_for_seen_subjects(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("sleepstudy_slopes", None)
    import sleepstudy_slopes

    table = sleepstudy_slopes.main(["--output-dir", str(tmp_path)])
    assert abs(table.loc["days", "posterior mean"] - 10.47) < 1.0
    mae = sleepstudy_slopes.five_fold_mae(*sleepstudy_slopes.load_sleepstudy())
    assert (
        mae.loc["intercepts and slopes", "seen subjects"]
        < mae.loc["random intercepts", "seen subjects"]
    )
    for name in ["sleepstudy_lines.png", "sleepstudy_slope_shrinkage.png"]:
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] >= 300 and image.std() > 0.05
