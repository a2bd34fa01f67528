"""The oracle row reads the phantom's own hazard covariates, not a reader's grades of them."""
import pandas as pd

from ONFHAssistLib.training.survival_data import oracle_covariates


def test_the_oracle_prefers_the_generators_true_grades_over_readers_grades():
    table = pd.DataFrame({"necrotic_ratio": ["0.2"], "necrotic_angle_deg": ["150"], "jic_type": ["A"],
                          "jic_stage": ["1"], "bme": ["0"], "true_jic_type": ["C1"], "true_jic_stage": ["2"]})
    assert oracle_covariates(table).tolist() == [[0.2, 1.5, 2.0, 2.0, 0.0]]
    plain = table.drop(columns=["true_jic_type", "true_jic_stage"])
    assert oracle_covariates(plain).tolist() == [[0.2, 1.5, 0.0, 1.0, 0.0]]
