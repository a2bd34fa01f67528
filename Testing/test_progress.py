"""Progress for people and panels: a line at least every second on a long step outside a terminal, i/N units
with an ETA computed from the finished units, and the JSON-lines fields the README documents."""
from __future__ import annotations

import io as text_io
import threading
import time
from pathlib import Path

import torch
from ONFHAssistLib import progress
from ONFHAssistLib.analysis.batch import run_batch
from ONFHAssistLib.progress import (
    BarReporter,
    JsonLinesReporter,
    Reporter,
    Steps,
    parse_line,
)
from ONFHAssistLib.training.engine import Trainer


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder(Reporter):
    def __init__(self):
        self.events = []

    def emit(self, event, stage, **fields):
        self.events.append({"event": event, "stage": stage, **fields})


class StampedStream(text_io.StringIO):
    """A non-terminal stream that records when each line was written."""

    def __init__(self):
        super().__init__()
        self.stamps = []

    def write(self, text):
        self.stamps += [time.monotonic()] * text.count("\n")
        return super().write(text)


def test_a_long_step_outside_a_terminal_shows_a_line_at_least_every_second():
    """The old reporter printed at most every 5 s on events only: a 16 s step without events never showed."""
    stream = StampedStream()
    reporter = BarReporter(stream)
    start = time.monotonic()
    reporter.progress("analyze", 0.1, message="finding both femoral heads")
    time.sleep(4.2)  # one long step, no event
    reporter.progress("analyze", 1.0, message="done")
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 4, lines
    assert all(line.startswith("analyze: 10% finding both femoral heads (0:0") for line in lines[:-1]), lines
    assert lines[-1].startswith("analyze: 100% done")
    gaps = [b - a for a, b in zip([start + 1.0, *stream.stamps], stream.stamps)]
    assert max(gaps) < 1.5, gaps  # the first a second after the event, then at least one a second
    assert not progress._beating  # the step ended: no heartbeat thread is left


def test_heartbeat_lines_from_a_fake_clock_with_the_elapsed_time():
    clock, stream = FakeClock(), text_io.StringIO()
    reporter = BarReporter(stream, clock=clock, heartbeat=False)
    reporter.progress("train segmentation", 0.25, message="epoch 2/8")
    clock.now = 0.5
    assert reporter.tick() == 0.5  # nothing yet (a quick failure prints its error alone); next beat at 1 s
    assert stream.getvalue() == ""
    clock.now = 1.0
    assert reporter.tick() == 1.0  # shown now, next beat in a second
    clock.now = 1.6
    reporter.tick()
    clock.now = 2.0
    reporter.tick()
    clock.now = 75.0
    reporter.tick()
    assert stream.getvalue().splitlines() == ["train segmentation: 25% epoch 2/8 (0:01 elapsed)",
                                              "train segmentation: 25% epoch 2/8 (0:02 elapsed)",
                                              "train segmentation: 25% epoch 2/8 (1:15 elapsed)"]
    reporter.result("train")
    assert reporter.tick() is None  # the command finished: the heartbeat ends


def test_units_count_i_of_n_and_the_eta_is_the_mean_worked_unit_times_the_units_left():
    clock, events = FakeClock(), Recorder()
    steps = Steps(events, "cv survival", 4, clock=clock)
    steps.start("fold 1/2, model 1/2: cox")
    clock.now = 10.0
    steps.done()
    steps.start("fold 1/2, model 2/2: net")  # read back from disk: counted, not timed
    clock.now = 10.5
    steps.done(cached=True)
    steps.start("fold 2/2, model 1/2: cox")
    clock.now = 40.5
    steps.done()
    steps.start("fold 2/2, model 2/2: net")
    progress_events = [e for e in events.events if e["event"] == "progress"]
    assert [e["message"] for e in progress_events[::2]] == ["fold 1/2, model 1/2: cox", "fold 1/2, model 2/2: net",
                                                            "fold 2/2, model 1/2: cox", "fold 2/2, model 2/2: net"]
    assert [e["units_done"] for e in progress_events] == [0, 1, 1, 2, 2, 3, 3]
    assert {e["units"] for e in progress_events} == {4}
    assert "eta_s" not in progress_events[0]  # nothing finished yet: no estimate
    assert progress_events[1]["eta_s"] == 30.0  # 10 s per unit, 3 left
    assert progress_events[-1]["eta_s"] == 20.0  # (10 + 30) / 2 s per unit, 1 left (the cached one not timed)
    assert progress_events[-1]["fraction"] == 0.75


def test_the_eta_text_counts_down_between_events_and_names_the_outer_job():
    clock, stream = FakeClock(), text_io.StringIO()
    reporter = BarReporter(stream, clock=clock, heartbeat=False)
    steps = Steps(reporter, "cv survival", 3, clock=clock)
    with steps.step("fold 1/3, model 1/1: net"):
        clock.now = 60.0
    steps.start("fold 2/3, model 1/1: net")  # 2 units left at 60 s each
    reporter.progress("train net", 0.5, message="epoch 4/8")
    clock.now = 75.0
    assert reporter.line() == ("cv survival: fold 2/3, model 1/1: net, about 1:45 left | "
                               "train net: 50% epoch 4/8 (0:15 elapsed)")
    clock.now = 400.0
    assert "about 0:00 left" in reporter.line()  # late: never a negative time


def test_parallel_units_divide_the_time_left():
    clock, events = FakeClock(), Recorder()
    steps = Steps(events, "cv survival", 5, parallel=2, clock=clock)
    steps.start("fold 1/5 started", key=0)
    steps.start("fold 2/5 started", key=1)
    clock.now = 100.0
    steps.done(key=0, label="fold 1/5 finished")
    assert events.events[-1]["eta_s"] == 200.0  # 100 s per fold, 4 left, 2 at a time
    assert events.events[-1]["message"] == "fold 1/5 finished"


def test_jsonl_progress_carries_the_documented_unit_fields():
    out = text_io.StringIO()
    clock = FakeClock()
    steps = Steps(JsonLinesReporter(out), "batch", 2, clock=clock)
    with steps.step("scan 1/2: a"):
        clock.now = 3.0
    events = [parse_line(line) for line in out.getvalue().splitlines()]
    assert events[-1] == {"event": "progress", "stage": "batch", "fraction": 0.5, "message": "scan 1/2: a",
                          "units_done": 1, "units": 2, "eta_s": 3.0}
    text = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())
    for key in ("`units_done`", "`units`", "`eta_s`"):
        assert key in text


def test_clear_bar_and_an_error_stop_the_heartbeat():
    stream = StampedStream()
    reporter = BarReporter(stream, tick_s=0.05)
    reporter.progress("analyze", 0.3)
    time.sleep(0.2)
    progress.clear_bar()
    shown = len(stream.getvalue().splitlines())
    time.sleep(0.2)
    assert shown >= 1 and len(stream.getvalue().splitlines()) == shown and not progress._beating
    reporter.progress("analyze", 0.5)
    reporter.error("analyze", "the scan is unreadable")
    time.sleep(0.2)
    assert stream.getvalue().splitlines()[-1] == "error: the scan is unreadable"
    assert not [t for t in threading.enumerate() if t.name == "onfh-progress"]


def test_a_batch_names_each_scan_as_i_of_n(tmp_path):
    class Analyzer:  # every scan is missing: run_batch records the failure and goes on
        reporter, sides = Recorder(), ("R", "L")

    analyzer = Analyzer()
    run_batch(analyzer, [tmp_path / "a.nii.gz", tmp_path / "b.nrrd"], tmp_path / "out", "auto", None)
    shown = [(e["message"], e["units_done"]) for e in analyzer.reporter.events if e["event"] == "progress"]
    assert shown == [("scan 1/2: a", 0), ("scan 1/2: a", 1), ("scan 2/2: b", 1), ("scan 2/2: b", 2)]


def test_training_reports_each_epoch_start_and_end_and_closes_on_early_stop():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    events = Recorder()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01),
                      lambda net, batch: torch.nn.functional.mse_loss(net(batch[0]), batch[1]),
                      lambda net: {"val": 1.0}, monitor="val", mode="max", patience=2, reporter=events, stage="toy")
    fit = trainer.fit(10, lambda epoch: [(x, y)])
    assert fit.epochs_run == 3  # epoch 1 is the best; two without improvement stop the run
    shown = [(e["message"], e["fraction"], "epoch_s" in e) for e in events.events if e["event"] == "progress"]
    assert shown == [("epoch 1/10", 0.0, False), ("epoch 1/10", 0.1, True), ("epoch 2/10", 0.1, False),
                     ("epoch 2/10", 0.2, True), ("epoch 3/10", 0.2, False), ("epoch 3/10", 0.3, True),
                     ("early stop after epoch 3/10", 1.0, False)]
    assert [e["event"] for e in events.events].count("metric") == 3


def test_parallel_folds_report_each_fold_started_and_finished_and_forward_the_childs_progress(monkeypatch, tmp_path):
    from ONFHAssistLib.training import TrainSettings, parallel_folds

    class Child:  # a fold child that has already finished, having sent one progress event
        def __init__(self, argv, env=None):
            self.fold = int(argv[argv.index("--fold") + 1])

        def start(self):
            return self

        def drain(self):
            events, self.sent = ([] if getattr(self, "sent", False) else
                                 [{"event": "progress", "stage": "train net", "fraction": 0.5}]), True
            return events

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(parallel_folds, "Job", Child)
    monkeypatch.setattr(parallel_folds, "POLL_S", 0.0)
    events = Recorder()
    settings = TrainSettings(task="survival", data=tmp_path, out=tmp_path / "out", folds=3)
    parallel_folds.run(settings, events, parallel=2)
    shown = [(e["stage"], e.get("message", ""), e.get("units_done")) for e in events.events]
    assert ("cv survival", "fold 1/3 started", 0) in shown and ("cv survival", "fold 3/3 finished", 3) in shown
    assert ("fold 1: train net", "", None) in shown  # a child's stage, numbered from 1 like the messages
    assert events.events[-1]["fraction"] == 1.0
