"""No code path can unpickle a file a user hands us: every torch.load is weights_only=True, every np.load
has allow_pickle=False, and pickle, joblib, dill and pandas' read_pickle are never used."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("ONFHAssist", "ONFHTraining", "Resources") for p in (REPO / folder).rglob("*.py"))
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _problems(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"line {node.lineno}: imports {n}" for n in names if n and n.split(".")[0] in FORBIDDEN_MODULES]
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        name = f"{owner}.{node.func.attr}"
        if name == "torch.load":
            flag = _keyword(node, "weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                found.append(f"line {node.lineno}: torch.load without weights_only=True")
        if name == "np.load":
            flag = _keyword(node, "allow_pickle")
            if not (isinstance(flag, ast.Constant) and flag.value is False):
                found.append(f"line {node.lineno}: np.load without allow_pickle=False")
        if node.func.attr == "read_pickle":
            found.append(f"line {node.lineno}: read_pickle")
    return found


def test_the_scan_catches_what_it_looks_for():
    bad = ast.parse("import pickle\nimport torch, numpy as np\ntorch.load('w.pt')\nnp.load('x.npy')\n"
                    "torch.load('w.pt', weights_only=False)\npd.read_pickle('t')\n")
    assert len(_problems(bad)) == 5
    good = ast.parse("torch.load('s.pt', weights_only=True)\nnp.load('c.npz', allow_pickle=False)\n")
    assert _problems(good) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_unsafe_deserialisation(path):
    assert _problems(ast.parse(path.read_text(encoding="utf-8"))) == []
