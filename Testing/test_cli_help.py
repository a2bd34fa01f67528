"""A command line that explains itself (issue 24): every option of every subcommand has a description, train,
evaluate and cv each list only the options they read, and misuse of them is one sentence and exit 2."""
import argparse

import pytest

from ONFHAssistLib.cli import build_parser, main


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for child_name, child in _subparsers(sub):
                    yield f"{name} {child_name}", child


def _options(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if a.help != argparse.SUPPRESS}


@pytest.mark.parametrize("verb", ["train", "evaluate", "cv"])
def test_task_verbs_describe_every_option(verb):
    parser = dict(_subparsers(build_parser()))[verb]
    assert parser.description
    for action in parser._actions:
        if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
            assert action.help and len(action.help) > 8, (verb, action.dest)
    text = parser.format_help()
    assert "default:" in text


def test_train_evaluate_and_cv_no_longer_share_one_option_list():
    parsers = dict(_subparsers(build_parser()))
    train, evaluate, cv = (_options(parsers[v]) for v in ("train", "evaluate", "cv"))
    assert {"--init", "--name", "--no-validation"} <= train and not {"--init", "--name", "--no-validation"} & cv
    assert {"--models", "--parallel-folds"} <= cv and not {"--models", "--parallel-folds"} & train
    assert evaluate == {"-h", "--help", "--data", "--out", "--device", "--model", "--progress"}


def test_every_subcommand_option_has_help():
    for name, parser in _subparsers(build_parser()):
        if name in ("train", "evaluate", "cv", "dataset add"):
            for action in parser._actions:
                if action.option_strings and action.help != argparse.SUPPRESS:
                    assert action.help, (name, action.dest)


@pytest.mark.parametrize("argv, message", [
    (["train", "segmentation", "--data", ".", "--folds", "1"], "must be 0 (no validation) or at least 2 (got 1)"),
    (["cv", "survival", "--data", ".", "--init", "onfh-segmentation"], "unrecognized arguments: --init"),
    (["evaluate", "segmentation", "--data", ".", "--epochs", "2"], "unrecognized arguments: --epochs"),
])
def test_misuse_is_one_sentence(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_help_exits_zero(capsys):
    for argv in (["--help"], ["train", "--help"], ["cv", "--help"], ["dataset", "add", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert "--no-validation" in capsys.readouterr().out


@pytest.mark.parametrize("side, expected", [
    ("R:jic_stge=2", "--side 'R:jic_stge=2': unknown key 'jic_stge' (did you mean 'jic_stage'?); known keys: "
                     "time_months, event, jic_stage, jic_type, arco, steinberg, ficat, head_x, head_y, head_z"),
    ("R:time=24,event=1", "--side 'R:time=24,event=1': unknown key 'time' (did you mean 'time_months'?)"),
    ("R:event=1", "--side 'R:event=1': give time_months and event together"),
    ("R:arco=VII", "--side 'R:arco=VII': arco 'VII' is not one of ['0', '1', '2', '3', '4']"),
])
def test_side_input_is_checked_against_what_the_user_typed(tmp_path, capsys, side, expected):
    """A typo is refused with the known keys (it was stored as an extra column), and a message speaks of the
    --side text, not of a 'hips.csv row 1' the user never wrote; nothing is written."""
    argv = ["dataset", "add", str(tmp_path / "ds"), "--image", str(tmp_path / "scan.nii.gz"), "--patient", "P1",
            "--side", side]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert expected in err and "hips.csv" not in err
    assert not (tmp_path / "ds").exists()


def test_grades_are_read_as_printed():
    from ONFHAssistLib.dataset import parse_side

    row = parse_side("L:arco=II,ficat=iv,steinberg=VI,jic_stage=3,jic_type=c1,time_months=24,event=1")
    assert row == {"side": "L", "time_months": "24", "event": "1", "arco": "2", "ficat": "4", "steinberg": "6",
                   "jic_stage": "3", "jic_type": "C1"}
