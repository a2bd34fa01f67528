"""Panel jobs: progress streamed in order, the error line kept, and cancel reaping the whole process tree."""
import sys
import time

import psutil
import pytest

from ONFHAssistLib.devices import describe_device, resolve_device, summary_line
from ONFHAssistLib.cli import main
from ONFHAssistLib.jobs import Job, analysis_folder, analyze_args, child_env, onfh_command, run_short

from ONFHAssistLib.slicer import demo_case

ROOT_DEMO = demo_case.image_path()

REPORTER = """
import json, sys, time
for i in range(3):
    print(json.dumps({"event": "progress", "stage": "analyze", "fraction": (i + 1) / 3}), flush=True)
print("plain text is a log line", flush=True)
print("error: scan.nii.gz: not a 3D volume.", file=sys.stderr, flush=True)
sys.exit(2)
"""

SPAWNER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_events_arrive_in_order_and_the_error_line_is_kept():
    job = Job([sys.executable, "-c", REPORTER]).start()
    assert job.wait(timeout=30) == 2
    events = job.drain()
    assert [e["fraction"] for e in events if e["event"] == "progress"] == [1 / 3, 2 / 3, 1.0]
    assert events[-1] == {"event": "log", "stage": "", "message": "plain text is a log line"}
    assert job.error_message == "error: scan.nii.gz: not a 3D volume."
    assert job.drain() == []


def test_cancel_reaps_the_child_and_its_children():
    job = Job([sys.executable, "-c", SPAWNER]).start()
    deadline = time.time() + 20
    events = []
    while not events and time.time() < deadline:
        events = job.drain()
        time.sleep(0.05)
    grandchild = int(events[0]["message"])
    assert psutil.pid_exists(grandchild)
    job.cancel(grace_seconds=3)
    assert job.poll() is not None
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_onfh_child_runs_the_core_and_reports_bad_input_in_one_line(tmp_path):
    job = Job(onfh_command(["segment", str(tmp_path / "missing.nrrd"), "--out", str(tmp_path / "out")]),
              env=child_env()).start()
    assert job.wait(timeout=120) == 2
    assert "missing.nrrd" in job.error_message and not (tmp_path / "out").exists()


def test_analysis_folders_are_new_each_time_and_named_safely(tmp_path):
    first = analysis_folder("CT: hip/L?", tmp_path)
    second = analysis_folder("CT: hip/L?", tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.parent == tmp_path and "/" not in first.name[16:] and first.name.endswith("CT__hip_L_")


def test_info_child_reports_the_device_line_the_panel_shows():
    job = Job(onfh_command(["info", "--progress", "jsonl"]), env=child_env()).start()
    assert job.wait(timeout=120) == 0
    (result,) = [e for e in job.drain() if e["event"] == "result"]
    assert result["summary"] == summary_line(describe_device(resolve_device("auto")))
    assert {m["task"] for m in result["models"]} >= {"localizer", "segmentation"}


def test_device_summary_line_for_each_kind_of_machine():
    assert summary_line({"torch": "2.13.0+cpu", "cuda_build": "none"}) == "torch 2.13.0+cpu, CPU only (no CUDA build)"
    assert summary_line({"torch": "2.5", "cuda_build": "12.4"}) == "torch 2.5, CPU (CUDA 12.4 build, but no GPU found)"
    gpu = {"torch": "2.5", "cuda_build": "12.4", "gpu": "NVIDIA H100", "free_mb": 71680}
    assert summary_line(gpu) == "torch 2.5, CUDA 12.4, NVIDIA H100 (70 GB free)"


def test_panel_settings_become_analyze_arguments_the_cli_accepts(tmp_path, capsys):
    args = analyze_args(tmp_path / "in.nrrd", tmp_path / "out", "ct", "cpu", {"R": " arco=2, ficat=2 ", "L": ""})
    assert args[args.index("--modality") + 1] == "ct" and args[args.index("--device") + 1] == "cpu"
    assert args.count("--grades") == 1 and args[args.index("--grades") + 1] == "R:arco=2,ficat=2"
    bad = analyze_args(tmp_path / "in.nrrd", tmp_path / "out", grades={"L": "arco=9"})
    assert main(bad) == 2 and "arco='9'" in capsys.readouterr().err  # the child's one readable line
    left = analyze_args(tmp_path / "in.nrrd", tmp_path / "out", grades={"R": "arco=2", "L": "arco=1"}, sides="left")
    assert left[left.index("--sides") + 1:left.index("--sides") + 3] == ["L", "--progress"]
    assert left.count("--grades") == 1 and left[left.index("--grades") + 1] == "L:arco=1"  # R grades not sent
    both = analyze_args(tmp_path / "in.nrrd", tmp_path / "out")
    assert both[both.index("--sides") + 1:both.index("--sides") + 3] == ["R", "L"]
    typed = ["analyze", str(tmp_path / "in.nrrd"), "--out", str(tmp_path / "o"), "--sides", "R", "--grades", "L:arco=2"]
    assert main(typed) == 2 and "names the L hip, which --sides R leaves out" in capsys.readouterr().err


def test_training_arguments_are_accepted_by_the_cli(tmp_path, capsys):
    from ONFHAssistLib.jobs import run_folder, training_args

    run = run_folder("cv survival", tmp_path)
    args = training_args("cv", "survival", tmp_path / "missing-data", run, epochs=3, device="cpu", folds=4)
    assert args[:2] == ["cv", "survival"] and args[args.index("--folds") + 1] == "4"
    assert args[args.index("--epochs") + 1] == "3" and "--progress" in args
    assert main(args) == 2 and "no such dataset folder" in capsys.readouterr().err
    assert "--epochs" not in training_args("train", "staging", tmp_path, run)
    tune = training_args("train", "segmentation", tmp_path / "missing-data", run, init=" onfh-segmentation ")
    assert tune[tune.index("--init") + 1] == "onfh-segmentation" and "--init" not in training_args(
        "cv", "segmentation", tmp_path, run, init="onfh-segmentation")  # CV folds always start from scratch
    assert main(tune) == 2 and "no such dataset folder" in capsys.readouterr().err  # --init itself accepted
    refused = training_args("train", "survival", tmp_path / "missing-data", run, init="onfh-survival")
    assert main(refused) == 2 and "--init works with" in capsys.readouterr().err


def test_a_real_onfh_child_streams_progress_in_order_and_cancel_leaves_no_process(tmp_path):
    """`python -m ONFHAssistLib phantom` on tiny scans: the panel sees each patient's progress in order,
    then the result; a second, longer run cancelled half-way leaves no process of its tree behind."""
    small = ["--shape", "48", "40", "32", "--spacing", "4", "--progress", "jsonl"]
    job = Job(onfh_command(["phantom", "--out", str(tmp_path / "a"), "--patients", "3", *small]), env=child_env()).start()
    assert job.wait(timeout=300) == 0, job.error_message
    events = job.drain()
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == pytest.approx([1 / 3, 2 / 3, 1.0], abs=1e-4)  # rounded to 4 places on the wire
    assert events[-1]["event"] == "result" and events[-1]["dataset"] == str(tmp_path / "a")

    job = Job(onfh_command(["phantom", "--out", str(tmp_path / "b"), "--patients", "500", *small]),
              env=child_env()).start()
    deadline = time.time() + 120
    while not any(e["event"] == "progress" for e in job.drain()) and time.time() < deadline:
        time.sleep(0.1)
    tree = [job.process.pid] + [p.pid for p in psutil.Process(job.process.pid).children(recursive=True)]
    job.cancel(grace_seconds=5)
    assert job.poll() is not None
    alive = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def test_model_sets_offer_each_alternative_and_reach_analyze_as_models_picks(tmp_path, capsys):
    from ONFHAssistLib.jobs import DEFAULT_MODEL_SET, effective_device, model_sets

    installed = [{"task": "localizer", "name": "onfh-localizer", "version": "1.0.0"},
                 {"task": "staging", "name": "onfh-staging", "version": "1.0.0"},
                 {"task": "staging", "name": "my-staging", "version": "2.1.0"}]
    sets = model_sets(installed)
    assert sets == {DEFAULT_MODEL_SET: [], "staging: my-staging 2.1.0": ["staging=my-staging@2.1.0"],
                    "staging: onfh-staging 1.0.0": ["staging=onfh-staging@1.0.0"]}
    args = analyze_args(tmp_path / "in.nrrd", tmp_path / "out", models=sets["staging: my-staging 2.1.0"])
    assert args[args.index("--models") + 1] == "staging=my-staging@2.1.0"
    assert "--models" not in analyze_args(tmp_path / "in.nrrd", tmp_path / "out", models=sets[DEFAULT_MODEL_SET])
    # The CLI takes the pick and answers an unknown model in one line (nothing is analysed).
    io_free = [a if a != str(tmp_path / "in.nrrd") else str(ROOT_DEMO) for a in args]
    assert main(io_free) == 2 and "my-staging" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    assert effective_device("cuda", {"device": "cpu"}) == (
        "cpu", "CUDA was asked for but no CUDA GPU is available here; running on the CPU instead.")
    assert effective_device("cuda", {"device": "cuda"}) == ("cuda", "")
    assert effective_device("cuda", None) == ("cuda", "")  # device check not back yet: the child decides
    assert effective_device("auto", {"device": "cpu"}) == ("auto", "")


def test_learning_rate_batch_size_and_preset_reach_the_training_cli(tmp_path, monkeypatch):
    from ONFHAssistLib import cli
    from ONFHAssistLib.jobs import training_args

    args = training_args("train", "survival", tmp_path, tmp_path / "run", epochs=1, lr=3e-4, batch_size=16,
                         preset="cpu")
    seen = {}
    monkeypatch.setitem(cli.COMMANDS, "train", lambda parsed: seen.update(vars(parsed)) or 0)
    assert main(args) == 0
    assert (seen["lr"], seen["batch_size"], seen["preset"], seen["epochs"]) == (3e-4, 16, "cpu", 1)
    bare = training_args("train", "survival", tmp_path, tmp_path / "run", preset="default")
    assert not {"--lr", "--batch-size", "--preset", "--epochs"} & set(bare)


def test_publish_runs_in_a_child_and_its_error_sentence_reaches_the_panel(tmp_path, monkeypatch):
    """ONFH Training's Publish: torch is imported by the child, never by Slicer's GUI process."""
    from ONFHAssistLib.models import store as modelstore

    monkeypatch.setenv("ONFH_MODELS", str(tmp_path / "store"))
    shipped = modelstore.list_models("localizer")[0]
    message = run_short(["models", "publish", str(shipped.folder)])
    assert message.startswith(f"published {shipped.name} {shipped.version}")
    published = tmp_path / "store" / f"{shipped.name}-{shipped.version}"
    assert (published / "weights.safetensors").read_bytes() == (shipped.folder / "weights.safetensors").read_bytes()
    with pytest.raises(ValueError, match="already in the store"):
        run_short(["models", "publish", str(shipped.folder)])
