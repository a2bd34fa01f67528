"""The synthetic hip cohort with exact ground truth for every task: patient anatomy (`anatomy`), per-hip
truth, lesions and cohort presets (`hips`), stage signs (`signs`), clinicians' grades (`grades`), and the
scanner simulation and cohort writer (`cohort`).

May import `imaging` and `dataset` (to write a dataset folder); never the models or the pipeline.
"""
