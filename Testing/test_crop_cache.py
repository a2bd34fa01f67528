"""The crop cache: training crops say which modality they were normalised for, guessed when hips.csv is silent."""
import pandas as pd

from ONFHAssistLib.imaging.crops import CropSpec
from ONFHAssistLib.phantom.cohort import write_cohort
from ONFHAssistLib.training import crop_cache

SPEC = CropSpec(box_mm=64.0, spacing_mm=2.0)


def test_modality_comes_from_hips_csv_or_is_guessed_from_the_image(tmp_path):
    data = write_cohort(tmp_path / "data", 2, seed=5, modality="mixed")
    truth = pd.read_csv(data / "hips.csv", dtype=str)
    assert set(truth.modality) == {"ct", "mr_t1"}
    given = crop_cache.build(data, SPEC, tmp_path / "given")
    assert given.modality.tolist() == truth.modality.tolist()
    truth.drop(columns="modality").to_csv(data / "hips.csv", index=False)
    guessed = crop_cache.build(data, SPEC, tmp_path / "guessed")
    assert guessed.modality.tolist() == truth.modality.tolist()
