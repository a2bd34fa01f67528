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
    _add_progress(ph)

    ds = sub.add_parser("dataset", help="validate a dataset folder or add a case to it")
    ds_sub = ds.add_subparsers(dest="action", required=True, parser_class=_Parser)
    val = ds_sub.add_parser("validate", help="print a summary and every problem; exit 2 on any error")
    val.add_argument("dir", type=Path)
    val.add_argument("--folds", type=int, default=0, help="also show the patient-grouped fold sizes")
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    add = ds_sub.add_parser("add", help="add one scan (image, optional label map, hip rows) atomically")
    add.add_argument("dir", type=Path)
    add.add_argument("--image", required=True, type=Path)
    add.add_argument("--label", type=Path)
    add.add_argument("--patient", required=True)
    add.add_argument("--side", action="append", required=True, metavar="SIDE[:key=value,...]",
                     help="e.g. R:time_months=24,event=1,jic_stage=2 (repeat for each hip)")

    for verb, helptext in (("train", "train a model on a dataset folder"),
                           ("evaluate", "evaluate a model on a dataset folder (per-case CSV + summary)"),
                           ("cv", "patient-level cross-validation")):
        p = sub.add_parser(verb, help=helptext)
        p.add_argument("task", choices=sorted(TASKS))
        p.add_argument("--data", required=True, type=Path)
        p.add_argument("--out", type=Path, help="output folder (default out/<verb>/<task>)")
        p.add_argument("--epochs", type=_int_at_least(1), help="default: the task's own")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument("--seed", type=_int_at_least(0), default=0)
        p.add_argument("--system", help="staging grading system (ficat3, ficat, arco, jic_stage, binary)")
        p.add_argument("--preset", help="model size preset (e.g. cpu, paper)")
        p.add_argument("--batch-size", type=_int_at_least(1))
        p.add_argument("--lr", type=_positive_float)
        p.add_argument("--alpha", type=float, help="SRANet: weight of the classification loss (1 = no structure term)")
        p.add_argument("--guidance", type=float,
                       help="SRANet: weight of the attention-mass-on-lesion term (default 0.5; 0 = seed 001's loss)")
        p.add_argument("--folds", type=_int_at_least(2), default=5,
                       help="cv: number of folds; train: 1/FOLDS of the patients is held out for validation")
        p.add_argument("--model", help="model folder, name or name@version (evaluate)")
        p.add_argument("--init", metavar="MODEL", help="train segmentation|staging|sranet starting from this model's weights")
        p.add_argument("--models", default="all", help="comma-separated model rows for cv, or all")
        p.add_argument("--no-resume", dest="resume", action="store_false")
        p.add_argument("--overwrite", action="store_true",
                       help="train/cv: replace a run in --out that was started with other arguments")
        p.add_argument("--parallel-folds", type=int, default=1, metavar="N", help="cv: run N folds at once as child processes")
        p.add_argument("--fold", type=int, help=argparse.SUPPRESS)  # cv: one fold only (a --parallel-folds child)
        _add_progress(p)

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
    seg.add_argument("--localizer", help="model folder, name or name@version (default: newest)")
    seg.add_argument("--segmenter", help="model folder, name or name@version (default: newest)")
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
    _add_progress(an)

    info = sub.add_parser("info", help="torch, device and installed models (what the panels show)")
    _add_progress(info)

    demo = sub.add_parser("demo", help="run the main job on the bundled demo")
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    _add_progress(demo)
    return parser


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=["bar", "jsonl", "none"], default="bar")


def cmd_phantom(args) -> int:
    if args.patients < 1:
        raise InputError("--patients must be at least 1.")
    if args.spacing is not None and (len(args.spacing) not in (1, 3) or min(args.spacing) <= 0):
        raise InputError("--spacing takes one or three positive values in mm.")
    if args.shape is not None and min(args.shape) < 8:
        raise InputError("--shape needs at least 8 voxels per axis.")
    from .phantom.cohort import write_cohort
    from .progress import make_reporter

    reporter = make_reporter(args.progress)
    start = time.perf_counter()
    out = write_cohort(args.out, args.patients, args.seed, args.modality, args.shape, args.spacing, reporter)
    reporter.result("phantom", dataset=str(out), seconds=round(time.perf_counter() - start, 2))
    return 0


def cmd_dataset(args) -> int:
    from . import dataset

    if args.action == "add":
        scan = dataset.add_case(args.dir, args.image, args.label, args.patient, [dataset.parse_side(s) for s in args.side])
        print(f"added {scan} to {args.dir}")
        return 0
    report = dataset.validate(args.dir)
    if args.folds and report.ok:
        folds = dataset.patient_folds(dataset.read_hips(args.dir), args.folds)
        report.summary["patients_per_fold"] = [sum(1 for f in folds.values() if f == k) for k in range(args.folds)]
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
    from .analysis.results import stage_text

    for hip in sorted(analysis["hips"], key=lambda h: h["side"] != "R"):
        if not hip["found"]:
            print(f"{hip['side']} hip: not analysed ({hip['reason']})")
            continue
        parts = [f"head r {hip['radius_mm']:.1f} mm", f"necrotic ratio {hip['necrotic_ratio']:.3f}"]
        parts += [f"{system} {stage_text(stage)}" for system, stage in list(hip["stage"].items())[:1]]
        if hip["sranet"]:
            parts.append(f"SRANet P(necrosis) {hip['sranet']['probability']:.2f}")
        risk = hip["risk"]
        parts.append(f"{risk['group']} risk, collapse by 3 y {risk['collapse_probability']['36']:.0%}" if risk
                     else hip["risk_note"])
        print(f"{hip['side']} hip: " + "; ".join(parts))


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
    analyzer = Analyzer(args.device, _model_choices(args.models), reporter, tuple(dict.fromkeys(args.sides)))
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
    from .slicer import demo_case

    analysis = Analyzer(args.device, reporter=make_reporter(args.progress)).analyze(demo_case.image_path(), args.out)
    _print_analysis(analysis)
    truth = {row["side"]: row for row in demo_case.truth()}
    for hip in analysis["hips"]:
        t = truth[hip["side"]]
        print(f"{hip['side']} truth: head r {t['head_radius_mm']:.1f} mm, necrotic ratio {t['necrotic_ratio']:.3f}, "
              f"ARCO {t['arco']}, JIC type {t['jic_type']}")
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

        resolve_device(args.device)
        for folder in shipped.build(args.out, args.work, args.device, make_reporter(args.progress),
                                    tuple(args.task or shipped.ORDER)):
            print(f"built {folder}")
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


INIT_TASKS = ("segmentation", "staging", "sranet")  # recipes that read TrainSettings.init


def cmd_task(args) -> int:
    """`onfh train|evaluate|cv TASK`: hand the shared settings to the task's recipe."""
    if args.alpha is not None and not 0.0 <= args.alpha <= 1.0:
        raise InputError("--alpha must lie between 0 and 1 (1 = no structure term).")
    if args.guidance is not None and args.guidance < 0:
        raise InputError("--guidance must be 0 or more (0 = no attention-mass term).")
    if args.init and (args.command != "train" or args.task not in INIT_TASKS):
        raise InputError(f"--init works with `train {' or train '.join(INIT_TASKS)}` only.")
    if not args.data.is_dir():
        raise InputError(f"{args.data}: no such dataset folder.")
    if args.parallel_folds < 1 or not 0 <= (args.fold or 0) < args.folds:
        raise InputError("--parallel-folds must be at least 1 and --fold between 0 and --folds - 1.")
    if (args.parallel_folds > 1 or args.fold is not None) and args.command != "cv":
        raise InputError(f"--parallel-folds is for 'onfh cv', not '{args.command}'.")
    resolve_device(args.device)
    settings = TrainSettings(task=args.task, data=args.data, out=args.out or Path("out") / args.command / args.task,
                             epochs=args.epochs, device=args.device, seed=args.seed, system=args.system,
                             preset=args.preset, batch_size=args.batch_size, lr=args.lr, alpha=args.alpha,
                             guidance=args.guidance, folds=args.folds,
                             model=args.model, init=args.init, models=args.models, resume=args.resume,
                             parallel_folds=args.parallel_folds, fold=args.fold)
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
    if args.command in ("train", "cv") and args.fold is None:  # a --fold child runs in its parent's folder
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
    reporter.result(args.command, task=args.task, **(result if isinstance(result, dict) else {}))
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


COMMANDS = {"analyze": cmd_analyze, "info": cmd_info, "phantom": cmd_phantom, "segment": cmd_segment, "dataset": cmd_dataset, "demo": cmd_demo,
            "models": cmd_models, "bench": cmd_bench, "train": cmd_task, "evaluate": cmd_task, "cv": cmd_task}


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


def _fail(message: str) -> None:
    """The error sentence as stderr's last line, on a line of its own even mid-bar."""
    from .progress import clear_bar

    clear_bar()
    print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        if args.verbose:
            logging.getLogger().setLevel(logging.DEBUG)
        _check_out(args)
        return COMMANDS[args.command](args)
    except InputError as exc:
        _fail(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _fail("error: interrupted.")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line for users, traceback in debug
        log.debug("internal error", exc_info=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and exc.filename:
            _fail(f"error: {exc.filename}: cannot write there ({exc.strerror}).")
            return 2
        _fail(f"internal error: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
