"""`onfh` command line: every panel action is also a command (DESIGN §4).

Exit codes: 0 success, 2 bad input (one clear line on stderr, nothing half-written), 1 internal error.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

from . import __version__
from .devices import resolve_device
from .errors import InputError
from .phantom.hips import PRESETS
from .training import TASKS, TrainSettings, recipe

log = logging.getLogger("onfh")


class _Parser(argparse.ArgumentParser):
    """argparse that reports misuse as InputError (exit 2, one line) instead of printing usage."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse hook
        raise InputError(f"{self.prog}: {message}.")


def _int_at_least(low: int):
    """argparse type: a whole number >= low (argparse names the option in the message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} (got {value})")
        return value
    return parse


def _share(text: str) -> float:
    """argparse type: a share from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share from 0 to 1 (got {text})")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (a learning rate of -1 or nan trains nothing useful)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0 (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="onfh", description="ONFH Assist: osteonecrosis of the femoral head, from hip MRI/CT.")
    parser.add_argument("--version", action="version", version=f"onfh {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ph = sub.add_parser("phantom", help="generate a synthetic hip cohort with ground truth")
    ph.add_argument("--out", required=True, type=Path)
    ph.add_argument("--patients", type=int, default=70)
    ph.add_argument("--seed", type=_int_at_least(0), default=0)
    ph.add_argument("--modality", choices=["mr_t1", "ct", "mixed"], default="mr_t1")
    ph.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"))
    ph.add_argument("--spacing", type=float, nargs="+", metavar="MM", help="one value or three (x y z)")
    ph.add_argument("--preset", choices=list(PRESETS), default="default",
                    help="seed000: seed 000's pre-collapse population with clinicians' grades (README, Data); "
                         "segmentation: a training population with more healthy hips and lesions off the dome")
    ph.add_argument("--generator", choices=["classic", "realistic"], default="classic",
                    help="classic (default): the phantom the shipped models were trained on; realistic: muscles, "
                         "fat planes, pelvic ring, trabecular bone and clinical protocols (same hips and truth)")
    ph.add_argument("--synth-share", type=_share, default=0.0, metavar="P",
                    help="realistic generator: this share of scans gets random per-tissue intensities "
                         "(SynthSeg-style, for training a segmentation robust to unseen contrasts)")
    ph.add_argument("--workers", type=_int_at_least(1), default=1, metavar="N",
                    help="draw patients in N processes (about 2.5 GB of memory each at the default size); the "
                         "cohort is the same for every N")
    _add_progress(ph)

    ds = sub.add_parser("dataset", help="validate a dataset folder or add a case to it")
    ds_sub = ds.add_subparsers(dest="action", required=True, parser_class=_Parser)
    val = ds_sub.add_parser("validate", help="print a summary and every problem; exit 2 on any error")
    val.add_argument("dir", type=Path, help="dataset folder")
    val.add_argument("--folds", type=int, default=0, help="also show the patient-grouped fold sizes (default: 0, none)")
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    add = ds_sub.add_parser("add", help="add one scan (image, optional label map, hip rows) atomically")
    add.add_argument("dir", type=Path, help="dataset folder (created with dataset.json on the first add)")
    add.add_argument("--image", required=True, type=Path, help="the scan (NIfTI, NRRD, MHA or a DICOM folder)")
    add.add_argument("--label", type=Path,
                     help="its corrected label map on the same grid (0 background, 1 pelvis, 2 femur, 3 necrosis)")
    add.add_argument("--patient", required=True, help="patient id (letters, digits, _ . -); folds group by it")
    add.add_argument("--side", action="append", required=True, metavar="SIDE[:key=value,...]",
                     help="one hip: R or L, then its outcome, grades and head centre, e.g. R:time_months=24,event=1,"
                          "arco=II (repeat for each hip; grades as printed, roman or arabic). Without "
                          "head_x,head_y,head_z (LPS mm) the centre is found by the localiser")
    add.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="where the localiser runs when a head centre is to be found (default: auto)")

    _add_task_parsers(sub)

    models = sub.add_parser("models", help="list, verify, import, publish or export model folders")
    m_sub = models.add_subparsers(dest="action", required=True, parser_class=_Parser)
    m_list = m_sub.add_parser("list", help="every model in the shipped and user stores")
    m_list.add_argument("--task")
    m_verify = m_sub.add_parser("verify", help="re-check sha256 of one model folder (or all when none is named)")
    m_verify.add_argument("folder", nargs="?", type=Path)
    m_import = m_sub.add_parser("import", help="unpack a model zip into the user store ($ONFH_MODELS)")
    m_import.add_argument("zip", type=Path)
    m_publish = m_sub.add_parser("publish", help="copy a trained model folder into the user store ($ONFH_MODELS)")
    m_publish.add_argument("folder", type=Path)
    m_export = m_sub.add_parser("export", help="zip a model folder")
    m_export.add_argument("folder", type=Path)
    m_export.add_argument("--out", required=True, type=Path)
    m_build = m_sub.add_parser("build", help="retrain the shipped models (fixed seeds; `make models`)")
    m_build.add_argument("--out", type=Path, default=Path("ONFHAssist/Resources/Models"))
    m_build.add_argument("--work", type=Path, default=Path("out/models-build"))
    m_build.add_argument("--task", action="append", choices=list(TASKS))
    m_build.add_argument("--device", default="auto")
    _add_progress(m_build)

    bench = sub.add_parser("bench", help="wall time and peak memory of whole runs (medians)")
    bench.add_argument("--out", type=Path, default=Path("bench"))
    bench.add_argument("--only", nargs="*", help="names (substrings) of benchmarks to run")
    bench.add_argument("--cv", action="store_true", help="also the ≈ 11 min CV of a seed-000-sized cohort")
    _add_progress(bench)

    seg = sub.add_parser("segment", help="find both femoral heads and segment pelvis, femur and necrosis")
    seg.add_argument("image", type=Path, help="hip MRI or CT (NIfTI, NRRD, MHA or a DICOM folder)")
    seg.add_argument("--out", type=Path, required=True, help="folder for labels.nii.gz, analysis.json, overlay.png")
    seg.add_argument("--modality", choices=["auto", "mr_t1", "ct"], default="auto")
    seg.add_argument("--localizer", help="model folder, name or name@version (default: the shipped model, its newest version)")
    seg.add_argument("--segmenter", help="model folder, name or name@version (default: the shipped model, its newest version)")
    seg.add_argument("--device", default="auto")
    seg.add_argument("--no-png", dest="png", action="store_false", help="skip the overlay PNG")

    an = sub.add_parser("analyze", help="the main job: segment, stage, attention and collapse risk per hip")
    an.add_argument("inputs", type=Path, nargs="+", metavar="IN",
                    help="hip MRI/CT files, DICOM series folders, or folders of volume files")
    an.add_argument("--out", type=Path, required=True, help="output folder (one subfolder per scan for several)")
    an.add_argument("--modality", choices=["auto", "mr_t1", "ct"], default="auto",
                    help="auto: CT or T1-weighted MR told from the scan, any other MR sequence refused; "
                         "mr_t1 or ct: analysed as that, with a warning when the scan looks otherwise")
    an.add_argument("--models", action="append", default=[], metavar="TASK=NAME",
                    help="pick a model per task (folder, name or name@version), e.g. staging=onfh-staging-arco")
    an.add_argument("--grades", action="append", metavar="SIDE:key=value,...|FILE.json",
                    help="known grades (override predicted ones as risk inputs), e.g. L:jic_stage=2,arco=2")
    an.add_argument("--sides", nargs="+", choices=["R", "L"], default=["R", "L"],
                    help="hips to analyse (default both); the other side is neither segmented nor reported")
    an.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    an.add_argument("--anonymise", "--anonymize", action="store_true",
                    help="leave the patient's name, ID and birth date, the study date, accession number and series "
                         "description out of everything written (analysis.json, reports, DICOM SEG/SR); sex and "
                         "UIDs are kept")
    dicom = an.add_mutually_exclusive_group()
    dicom.add_argument("--dicom", dest="dicom", action="store_const", const="always", default="auto",
                       help="write the DICOM SEG and SR (dicom/seg.dcm, dicom/sr.dcm) for a volume file input too, "
                            "with new UIDs and a new frame of reference (a DICOM series input gets them anyway)")
    dicom.add_argument("--no-dicom", dest="dicom", action="store_const", const="never",
                       help="for a DICOM series input, skip the DICOM SEG and SR")
    _add_progress(an)

    info = sub.add_parser("info", help="torch, device and installed models (what the panels show)")
    _add_progress(info)

    demo = sub.add_parser("demo", help="run the main job on the bundled demo")
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    _add_progress(demo)

    web = sub.add_parser("web", help="the demo in a browser: serve the ONFH Assist Web page (needs the web extra)")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 only on a booth network")
    web.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one, printed)")
    web.add_argument("--results", type=Path, default=None,
                     help="folder for the analyses (default: a temporary folder removed when the server stops)")
    web.add_argument("--token", default=None,
                     help="access token a visitor's URL must carry (?token=...); default: a new random one when "
                          "--host is not loopback, none on 127.0.0.1 (write --token=VALUE for one starting with '-')")
    return parser


TASK_VERBS = {
    "train": ("train a model on a dataset folder",
              "Train TASK's network on a dataset folder; the model lands in OUT/model (publish it with `onfh models "
              "publish`). A rerun with the same arguments resumes from the last finished epoch."),
    "evaluate": ("evaluate a model on a dataset folder (per-case CSV + summary)",
                 "Score an installed or trained model on a dataset folder: per_hip.csv and summary.json in OUT."),
    "cv": ("patient-level cross-validation",
           "Patient-level cross-validation of TASK (survival: every model row), mean ± sd per metric in "
           "OUT/table.md. A small cohort is checked first: fewer folds, or a refusal naming the numbers."),
}


def _add_task_parsers(sub) -> None:
    """`train`, `evaluate` and `cv`, each with the options it reads (its --help lists no other)."""
    for verb, (summary, description) in TASK_VERBS.items():
        p = sub.add_parser(verb, help=summary, description=description)
        p.add_argument("task", choices=sorted(TASKS), help="what to " + ("evaluate" if verb == "evaluate" else verb))
        p.add_argument("--data", required=True, type=Path,
                       help="dataset folder: dataset.json, images/, labels/ and hips.csv (see `onfh dataset`)")
        p.add_argument("--out", type=Path, help=f"output folder (default: out/{verb}/TASK)")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="auto: CUDA when present (default: auto)")
        if verb == "evaluate":
            p.add_argument("--model", help="model folder, name or name@version (default: the shipped TASK model, its newest version)")
            _add_progress(p)
            continue
        p.add_argument("--epochs", type=_int_at_least(1), help="epochs to train (default: the task's own)")
        p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of splits, batches and weights (default: 0)")
        p.add_argument("--system", help="staging: grading system, one of ficat3, ficat, arco, jic_stage, binary")
        p.add_argument("--preset", help="survival: network size preset, cpu or paper (default: cpu)")
        p.add_argument("--batch-size", type=_int_at_least(1), help="hips per batch (default: the task's own)")
        p.add_argument("--lr", type=_positive_float, help="learning rate (default: the task's own)")
        p.add_argument("--alpha", type=float,
                       help="SRANet: weight of the classification loss, 1 = no structure term (default: 0.9)")
        p.add_argument("--necrosis-weight", type=_positive_float,
                       help="segmentation: loss weight of the necrosis class; lower draws fewer false lesions (default: 4)")
        p.add_argument("--guidance", type=float,
                       help="SRANet: weight of the attention-mass-on-lesion term, 0 = seed 001's loss (default: 0.5)")
        p.add_argument("--no-resume", dest="resume", action="store_false",
                       help="train from the start even when OUT holds checkpoints of this run")
        p.add_argument("--overwrite", action="store_true",
                       help="replace a run in OUT that was started with other arguments")
        if verb == "train":
            p.add_argument("--folds", type=_folds_or_none, default=None, metavar="FOLDS",
                           help="hold 1/FOLDS of the patients out to choose the best epoch; 0 = no validation: "
                                "train on every case for --epochs and keep the last (default: 5, or 0 when the "
                                "dataset has fewer than 2 patients)")
            p.add_argument("--no-validation", dest="folds", action="store_const", const=0,
                           help="the same as --folds 0")
            p.add_argument("--init", metavar="MODEL",
                           help="localizer, segmentation, staging, sranet: start from this model's weights (fine-tuning)")
            p.add_argument("--name", help="name of the trained model (default: TASK-<dataset name>)")
        else:
            p.add_argument("--folds", type=_int_at_least(2), default=5, help="number of patient-grouped folds (default: 5)")
            p.add_argument("--models", default="all",
                           help="survival: comma-separated model ids, e.g. tri-stream,cox-grades, each optionally "
                                "on some of its inputs, e.g. survrnc[image+grades]; every-combination runs each "
                                "method on every input combination; a wrong id is answered with the list "
                                "(default: all)")
            p.add_argument("--parallel-folds", type=_int_at_least(1), default=1, metavar="N",
                           help="run N folds at once as child processes (default: 1)")
            p.add_argument("--fold", type=int, help=argparse.SUPPRESS)  # one fold only (a --parallel-folds child)
        _add_progress(p)


def _folds_or_none(text: str) -> int:
    """argparse type for `train --folds`: 0 (no validation) or at least 2."""
    value = _int_at_least(0)(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be 0 (no validation) or at least 2 (got 1)")
    return value


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=["bar", "jsonl", "none"], default="bar",
                   help="bar: a progress bar for people; jsonl: one JSON object per line on stdout (the Slicer "
                        "panels); none (default: bar)")


def cmd_phantom(args) -> int:
    if args.patients < 1:
        raise InputError("--patients must be at least 1.")
    if args.spacing is not None and (len(args.spacing) not in (1, 3) or min(args.spacing) <= 0):
        raise InputError("--spacing takes one or three positive values in mm.")
    if args.shape is not None and min(args.shape) < 8:
        raise InputError("--shape needs at least 8 voxels per axis.")
    if args.synth_share and args.generator != "realistic":
        raise InputError("--synth-share needs --generator realistic (random intensities are painted per tissue).")
    from .phantom.cohort import write_cohort
    from .progress import make_reporter

    reporter = make_reporter(args.progress)
    start = time.perf_counter()
    out = write_cohort(args.out, args.patients, args.seed, args.modality, args.shape, args.spacing, reporter,
                       args.preset, args.generator, args.synth_share, args.workers)
    reporter.result("phantom", dataset=str(out), seconds=round(time.perf_counter() - start, 2))
    return 0


def cmd_dataset(args) -> int:
    from . import dataset

    if args.action == "add":
        known = dataset.side_keys(args.dir)
        rows = [dataset.parse_side(s, known) for s in args.side]
        from .training.head_centres import fill_centres

        found = fill_centres(args.image, args.label, rows, args.device)  # training crops around them, as the panel's rows do
        scan = dataset.add_case(args.dir, args.image, args.label, args.patient, rows)
        centres = "; ".join(f"{r['side']} head centre ({r['head_x']}, {r['head_y']}, {r['head_z']}) mm found by the "
                            "localiser" for r in rows if r["side"] in found)
        print(f"added {scan} to {args.dir}" + (f" ({centres})" if centres else ""))
        return 0
    report = dataset.validate(args.dir)
    if args.folds and report.ok:
        folds = dataset.patient_folds(dataset.read_hips(args.dir), args.folds)
        report.summary["patients_per_fold"] = [sum(1 for f in folds.values() if f == k) for k in range(args.folds)]
        from .training.survival_plan import survival_warning

        survival = survival_warning(dataset.read_hips(args.dir), args.folds)  # what cv survival would do
        report.warnings += [survival] if survival else []
    if args.json:
        print(json.dumps({"summary": report.summary, "errors": report.errors, "warnings": report.warnings}, indent=2))
    else:
        _print_validation(args.dir, report)
    if not report.ok:
        raise InputError(f"{args.dir}: {len(report.errors)} problem(s); first: {report.errors[0]}")
    return 0


def _print_validation(root: Path, report) -> None:
    s = report.summary
    if s:
        print(f"dataset {root}: {report.headline()}")
        print("label coverage (scans with each label): "
              + ", ".join(f"{k} {v}" for k, v in s["label_coverage_scans"].items()))
        if "patients_per_fold" in s:
            print(f"patients per fold: {s['patients_per_fold']}")
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"problem: {e}")


def _model_choices(items: list[str]) -> dict[str, str]:
    choices = {}
    for item in items:
        task, eq, name = item.partition("=")
        if not eq or task not in TASKS:
            raise InputError(f"--models {item!r}: expected TASK=NAME with TASK one of {', '.join(TASKS)}.")
        choices[task] = name
    return choices


def _print_analysis(analysis: dict) -> None:
    """Per hip the key finding, then its confidence line indented (the words of the report's first box)."""
    from .analysis.findings import summary_text

    print(summary_text(analysis))


def cmd_analyze(args) -> int:
    from .analysis.batch import expand_inputs, run_batch
    from .analysis.grades import parse_grade_args
    from .analysis.pipeline import Analyzer
    from .imaging import io
    from .progress import make_reporter

    grades = parse_grade_args(args.grades)
    left_out = sorted(set(grades) - set(args.sides))
    if left_out:
        raise InputError(f"--grades names the {'/'.join(left_out)} hip, which --sides {' '.join(args.sides)} leaves out.")
    scans = expand_inputs(args.inputs)
    if len(scans) == 1:
        io.check_scan(scans[0])
    reporter = make_reporter(args.progress)
    human = args.progress != "jsonl"  # stdout belongs to the JSON lines then
    analyzer = Analyzer(args.device, _model_choices(args.models), reporter, tuple(dict.fromkeys(args.sides)),
                        args.anonymise, args.dicom)
    if len(scans) == 1:
        analysis = analyzer.analyze(scans[0], args.out, args.modality, grades)
        reporter.result("analyze", out=str(args.out), report=str(args.out / analysis["files"]["report"]))
        if human:
            print(f"device: {analyzer.device}")
            _print_analysis(analysis)
            print(f"report: {args.out / analysis['files']['report']} ({analysis['timings_s']['total']:.1f} s)")
        return 0
    result = run_batch(analyzer, scans, args.out, args.modality, grades)
    reporter.result("analyze", out=str(args.out), analysed=len(result.analyses), failed=result.failures)
    if human:
        print(f"analysed {len(result.analyses)} of {len(scans)} scans; one row per hip in {args.out / 'cohort.csv'}")
    for name, why in result.failures.items():
        print(f"failed: {name}: {why}", file=sys.stderr)
    return 2 if result.failures else 0


def cmd_info(args) -> int:
    from .devices import describe_device, summary_line
    from .models import store as modelstore
    from .progress import make_reporter

    device = describe_device(resolve_device("auto"))
    models = [{"task": e.task, "name": e.name, "version": e.version} for e in modelstore.list_models()]
    make_reporter(args.progress).result("info", version=__version__, device=device, models=models,
                                        summary=summary_line(device))
    if args.progress != "jsonl":
        print(f"onfh {__version__}; {summary_line(device)}")
        for m in models:
            print(f"  {m['task']:13s} {m['name']} {m['version']}")
    return 0


def cmd_demo(args) -> int:
    """Analyse the bundled demo scan (one hip with a lesion, one healthy) with the shipped models and
    set the results beside the phantom's truth."""
    from .analysis.pipeline import Analyzer
    from .progress import make_reporter
    from .analysis.findings import grade_text, percent_text
    from .slicer import demo_case

    analysis = Analyzer(args.device, reporter=make_reporter(args.progress)).analyze(demo_case.image_path(), args.out)
    _print_analysis(analysis)
    truth = {row["side"]: row for row in demo_case.truth()}
    for hip in analysis["hips"]:
        t = truth[hip["side"]]
        lesion = f"lesion {percent_text(t['necrotic_ratio'])} of the head" if t["necrotic_ratio"] else "no lesion"
        where = f", {grade_text('jic_type', t['jic_type'])}" if t["jic_type"] != "none" else ""
        print(f"{hip['side']} truth (phantom): {lesion}, {grade_text('arco', t['arco'])}{where}; "
              f"head r {t['head_radius_mm']:.1f} mm")
    print(f"demo finished in {analysis['timings_s']['total']:.1f} s; open {(args.out / 'report.html').resolve()}")
    return 0


def cmd_models(args) -> int:
    from .models import store as modelstore

    if args.action == "list":
        for e in modelstore.list_models(args.task):
            print(f"{e.task:13s} {e.name:28s} {e.version:8s} {e.card['sha256'][:12]}  {e.folder}")
        return 0
    if args.action == "verify":
        entries = [modelstore.read_entry(args.folder)] if args.folder else modelstore.list_models()
        for e in entries:
            modelstore.verify(e)
            print(f"ok  {e.name} {e.version} ({e.folder})")
        return 0
    if args.action == "build":
        from .progress import make_reporter
        from .training import shipped
        from .training.build_clock import BuildClock

        resolve_device(args.device)
        for folder in shipped.build(args.out, args.work, args.device, make_reporter(args.progress),
                                    tuple(args.task or shipped.ORDER)):
            print(f"built {folder}")
        print(BuildClock(args.work).summary())
        return 0
    if args.action == "import":
        e = modelstore.import_zip(args.zip)
        print(f"imported {e.name} {e.version} into {e.folder}")
        return 0
    if args.action == "publish":
        e = modelstore.publish_folder(args.folder)
        print(f"published {e.name} {e.version} to {e.folder}")
        return 0
    path = modelstore.export_zip(modelstore.read_entry(args.folder), args.out)
    print(f"exported to {path}")
    return 0


def cmd_bench(args) -> int:
    from . import bench
    from .progress import make_reporter

    groups = ("default", "cv") if args.cv else ("default",)
    chosen = [b for b in bench.default_benches(groups) if not args.only or any(o in b.name for o in args.only)]
    if not chosen:
        raise InputError("--only matched no benchmark.")
    result = bench.run(chosen, args.out, make_reporter(args.progress))
    print(bench.markdown(result))
    return 0


INIT_TASKS = ("localizer", "segmentation", "staging", "sranet")  # recipes that read TrainSettings.init


def cmd_task(args) -> int:
    """`onfh train|evaluate|cv TASK`: hand the settings to the task's recipe (options a verb lacks keep the
    defaults of TrainSettings)."""
    given = {key: getattr(args, key) for key in ("epochs", "seed", "system", "preset", "batch_size", "lr", "alpha",
                                                 "guidance", "necrosis_weight", "folds", "model", "init", "models",
                                                 "resume", "parallel_folds", "fold", "name") if hasattr(args, key)}
    settings = TrainSettings(task=args.task, data=args.data, out=args.out or Path("out") / args.command / args.task,
                             device=args.device, **given)
    if settings.alpha is not None and not 0.0 <= settings.alpha <= 1.0:
        raise InputError("--alpha must lie between 0 and 1 (1 = no structure term).")
    if settings.guidance is not None and settings.guidance < 0:
        raise InputError("--guidance must be 0 or more (0 = no attention-mass term).")
    if settings.init and args.task not in INIT_TASKS:
        raise InputError(f"--init works with `train {' or train '.join(INIT_TASKS)}` only.")
    if not args.data.is_dir():
        raise InputError(f"{args.data}: no such dataset folder.")
    if settings.fold is not None and not 0 <= settings.fold < settings.folds:
        raise InputError("--fold must lie between 0 and --folds - 1.")
    resolve_device(args.device)
    module = recipe(args.task)
    if not hasattr(module, args.command):
        raise InputError(f"'{args.command}' is not available for {args.task}.")
    from .progress import make_reporter
    from .training import distributed, run_folder

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command != "train":
        raise InputError(f"only 'onfh train' runs under torchrun; run '{args.command}' as one process"
                         + (" (--parallel-folds N runs folds side by side)." if args.command == "cv" else "."))
    job = distributed.init_from_env(args.device)
    new_folder = False
    if args.command in ("train", "cv") and settings.fold is None:  # a --fold child runs in its parent's folder
        if job.primary:
            new_folder = run_folder.claim(args.command, settings, args.overwrite)
        distributed.barrier(job)
    if not job.primary:  # rank 0 alone reports; the others only train
        logging.getLogger().setLevel(logging.WARNING)
    reporter = make_reporter(args.progress if job.primary else "none")
    try:
        result = getattr(module, args.command)(settings, reporter)
    except InputError:
        if new_folder:
            run_folder.release(settings)
        raise
    finally:
        distributed.shutdown()
    reporter.result(args.command, task=args.task, **{"out": str(settings.out), **(result if isinstance(result, dict) else {})})
    if args.progress != "jsonl" and job.primary:  # stdout belongs to the JSON lines then
        model = result.get("model") if isinstance(result, dict) else None
        print(f"{args.command} {args.task}: wrote {settings.out.resolve()}" + (f"; model: {model}" if model else ""))
    return 0


def cmd_segment(args) -> int:
    from .analysis.hipfinder import segment_file
    from .imaging import io

    io.check_scan(args.image)
    summary = segment_file(args.image, args.out, args.modality, args.localizer, args.segmenter,
                           resolve_device(args.device), args.png)
    for hip in summary["hips"]:
        if hip["found"]:
            print(f"{hip['side']} hip: head r {hip['radius_mm']:.1f} mm at {[round(v, 1) for v in hip['center_lps']]}, "
                  f"necrotic ratio {hip.get('necrotic_ratio', 0):.3f}, angle {hip.get('necrotic_angle_deg', 0):.0f}°")
        else:
            print(f"{hip['side']} hip: not found ({hip['reason']})")
    print(f"wrote {args.out} in {summary['seconds']:.1f} s")
    return 0


def cmd_web(args) -> int:
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: choose 0 (a free port) or a port between 1 and 65535.")
    if args.token is not None and not args.token.strip():
        raise InputError("--token is empty: give a token, or leave the flag out for a random one.")
    try:
        from .web.access import is_loopback
        from .web.app import serve
    except ImportError as exc:
        raise InputError(f"the web demo needs its extra ({exc.name} is missing): run `make web` or "
                         "`pip install -e .[web]`.") from exc
    if not is_loopback(args.host):
        print(f"warning: serving on {args.host}: anyone on this network who has the printed URL (its token) can "
              "open the page and run analyses; use it only on a closed booth network.", file=sys.stderr)
    serve(args.host, args.port, args.results, args.token)
    return 0


COMMANDS = {"analyze": cmd_analyze, "info": cmd_info, "phantom": cmd_phantom, "segment": cmd_segment, "dataset": cmd_dataset, "demo": cmd_demo,
            "models": cmd_models, "bench": cmd_bench, "train": cmd_task, "evaluate": cmd_task, "cv": cmd_task, "web": cmd_web}


# The place the user named cannot take the output: bad input, not a bug (EDQUOT does not exist on Windows).
WRITE_ERRNOS = {getattr(errno, name) for name in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "EEXIST", "EISDIR",
                                                  "ENOTDIR") if hasattr(errno, name)}


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable_under(path: Path) -> None:
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise InputError(f"--out {path}: {base} is a file, not a folder.")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"--out {path}: {base} is not writable (read-only or no permission).")


def _check_out(args) -> None:
    """Refuse an output the run could never write before any work starts: a file where a folder goes (or the
    reverse for `models export`), or a read-only place."""
    out = getattr(args, "out", None)
    if out is None:
        return
    if args.command == "models" and args.action == "export":
        if out.is_dir():
            raise InputError(f"--out {out}: is a folder; name the zip file to write.")
    elif out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: a file of that name exists; name a folder.")
    _check_writable_under(out)


QUIET_LIBRARIES = ("numexpr",)  # log at INFO on import ("NumExpr defaulting to 2 threads"): noise on stderr


def _fail(message: str, args, code: int) -> int:
    """The error sentence as stderr's last line, on a line of its own even mid-bar; under `--progress jsonl`
    also the documented "error" event on stdout, so a program following the run reads why it stopped."""
    from .progress import JsonLinesReporter, clear_bar

    clear_bar()
    if getattr(args, "progress", None) == "jsonl":
        JsonLinesReporter().error(args.command, message.split(": ", 1)[1], exit_code=code)
    print(message, file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    args = None
    try:
        args = build_parser().parse_args(argv)
        if args.verbose:
            logging.getLogger().setLevel(logging.DEBUG)
        _check_out(args)
        return COMMANDS[args.command](args)
    except InputError as exc:
        return _fail(f"error: {exc}", args, 2)
    except KeyboardInterrupt:
        return _fail("error: interrupted.", args, 130)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line for users, traceback in debug
        log.debug("internal error", exc_info=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and exc.filename:
            return _fail(f"error: {exc.filename}: cannot write there ({exc.strerror}).", args, 2)
        return _fail(f"internal error: {type(exc).__name__}: {exc}", args, 1)


if __name__ == "__main__":
    sys.exit(main())
