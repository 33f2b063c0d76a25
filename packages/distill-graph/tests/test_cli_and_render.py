"""The command line on a graph: run (with --json), eval (reproduces the stored accuracy), show (PNG), export."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from distill_core.cli import main


def test_run_eval_show_export(tmp_path, capsys) -> None:
    out = tmp_path / "art"
    code = main(["run", "gcond", "--dataset", "sbm", "--budget", "8", "--steps", "2", "--set", "outer=2",
                 "--set", "inner=1", "--models", "1", "--eval-epochs", "20", "--out", str(out), "--no-progress",
                 "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["budget"] == [2, 2, 2, 2] and report["total"] == 8
    assert report["protocol"]["model"] == "gcn" and report["protocol"]["selection"] == "best_val"
    assert report["picture"].endswith(".png")
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["eval", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["accuracy_mean"] == report["accuracy_mean"]

    assert main(["show", str(out), "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 100
    # a fresh process knows the graph summary type only once the artifact's modality is imported
    fresh = subprocess.run([sys.executable, "-m", "distill_core.cli", "show", str(out), "--out",
                            str(tmp_path / "fresh.png")], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert (tmp_path / "fresh.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["export", str(out), "--out", str(tmp_path / "g.npz")]) == 0
    with np.load(tmp_path / "g.npz") as exported:
        assert exported["x"].shape[0] == 8 and exported["edge_index"].shape[0] == 2


def test_unknown_graph_dataset_lists_choices(capsys) -> None:
    code = main(["run", "gcond", "--dataset", "ogbn-arxiv", "--budget", "8", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cora" in err and "citeseer" in err


def test_ratio_resolves_against_all_nodes(capsys, tmp_path) -> None:
    # sbm: 400 nodes, 80 training nodes; 3% of the graph = 12 nodes, 3 per class
    code = main(["run", "random", "--dataset", "sbm", "--ratio", "0.03", "--models", "1", "--eval-epochs", "5",
                 "--out", str(tmp_path / "r"), "--no-progress", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["budget"] == [3, 3, 3, 3]


def test_picture_has_a_legend_of_class_colours(tmp_path) -> None:
    import torch

    from distill_graph.render import PALETTE, draw_graph, legend

    panel = legend(["class 0: 2 nodes", "1 cats: 1 nodes"], 64)
    for c in range(2):  # each line shows its class's node colour
        colour = torch.tensor(PALETTE[c])[:, None, None]
        assert bool(((panel - colour).abs().sum(0) < 1e-6).any()), c
    assert legend([f"class {c}" for c in range(50)], 64).shape[1] == 64  # too many lines: cut, never taller
    path = draw_graph(torch.zeros(3, 3), torch.tensor([0, 1, 1]), 2, tmp_path / "g.png", size=64,
                      class_names=["a", "b"])
    assert path.read_bytes()[:4] == b"\x89PNG"
