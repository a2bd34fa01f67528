"""Survival statistics, thin over scikit-survival and lifelines: concordance, time-dependent AUC, IBS,
log-rank (`stats`), horizon statistics (`horizon_stats`: calibration, decision curves, NRI/IDI on hips of
known status), Kaplan–Meier-based NRI and IPCW IDI with bootstrap intervals (`reclassification`), Breslow
survival curves (`curves`), the classical baselines (`baselines`) and radiomics features (`radiomics`).

May import numpy, pandas, sksurv, lifelines, pyradiomics and the top-level helpers; never `analysis`,
`training`, `slicer` or `cli`.
"""
