"""The necrosis-vs-none endpoints of issue 22: CT ARCO I (invisible on CT by ARCO's own definition) is reported
apart, never mixed into the primary figure."""
import numpy as np

from ONFHAssistLib.training.staging_recipe import necrosis_endpoints


def test_a_missed_ct_stage_i_hip_lowers_only_its_own_endpoint():
    modality = np.array(["mr_t1", "mr_t1", "mr_t1", "ct", "ct", "ct", "ct"])
    arco = np.array([0, 1, 3, 0, 2, 1, 0])
    necrosis = (arco > 0).astype(int)
    score = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.05, 0.3])  # the CT stage-I hip scores below every healthy hip
    out = necrosis_endpoints(modality, arco, necrosis, score)
    # primary: every MR hip and the CT hips at ARCO 0 or >= II; all positives there outscore all negatives
    assert out["primary"] == {"hips": 6, "necrosis": 3, "auc": 1.0}
    # CT ARCO I vs the CT healthy hips: the stage-I hip (0.05) ranks below both healthy ones (0.2, 0.3)
    assert out["ct_stage_I_vs_none"] == {"hips": 3, "necrosis": 1, "auc": 0.0}


def test_an_endpoint_with_one_class_is_undefined_not_an_error():
    out = necrosis_endpoints(np.array(["ct", "ct"]), np.array([0, 0]), np.array([0, 0]), np.array([0.1, 0.2]))
    assert out["ct_stage_I_vs_none"]["hips"] == 2 and np.isnan(out["ct_stage_I_vs_none"]["auc"])
