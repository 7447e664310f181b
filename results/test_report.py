"""Tests for results/report.py, which compares runs: its table, its figure, and what it does with odd folders.
Run: python -m pytest -q from the project's root (which runs every test file)."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, PROJECT)
import dst_td3 as d  # noqa: E402
import report  # noqa: E402


def run_report(*argv):
    return subprocess.run([sys.executable, os.path.join(HERE, "report.py"), *argv], capture_output=True, text=True,
                          timeout=300, cwd=PROJECT)


def test_curve_metrics_final_return_area_and_the_step_that_reaches_a_target():
    steps = 5000 * np.arange(1, 13)
    returns = np.array([np.arange(12) * 100.0, np.arange(12) * 100.0 + 200])     # two seeds, 12 evaluations
    final, area, reached = report.curve_metrics(steps, returns, target=750)
    assert np.allclose(final, [650, 850]), f"curve_metrics: final return is the mean of the last 10: {final}"
    assert np.allclose(area, [550, 750]), f"curve_metrics: the area is the mean of all evaluations: {area}"
    assert reached == 40_000, f"curve_metrics: the seed mean 100·i + 100 first reaches 750 at i = 7: {reached}"
    assert report.curve_metrics(steps, returns, target=1e9)[2] is None


def make_run(folder, env, algo, seed, returns, connections, flops_vs_dense, dormant=(0.1, 0.2), **args):
    """A hand-made run folder: config.json and an eval.csv with one evaluation every 5,000 steps."""
    os.makedirs(folder)
    config = {"args": {**report.DEFAULTS, "env": env, "algo": algo, "seed": seed, **args}}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(folder, "eval.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, report.FIELDS)
        writer.writeheader()
        for i, ret in enumerate(returns, start=1):
            writer.writerow({"step": 5000 * i, "return_mean": ret, "return_std": 1.0, "episodes": 10,
                             "connections": connections, "connections_dense": 1000, "sparsity_actor": 0.5,
                             "sparsity_critic": 0.5, "flops": 1e9 * i, "flops_vs_dense": flops_vs_dense,
                             "dormant_actor": dormant[0], "dormant_critic": dormant[1]})


def table_cells(line):
    """The cells of one Markdown table row: "| a | b |" -> ["a", "b"]."""
    return [cell.strip() for cell in line.strip("|").split("|")]


def report_rows(stdout):
    return {tuple(cells[:2]): cells for cells in
            (table_cells(line) for line in stdout.splitlines()
             if line.startswith("| Hopper") or line.startswith("| Walker"))}


def test_report_table_numbers_on_hand_made_runs(tmp_path, capsys):
    dense = [np.arange(12) * 100.0, np.arange(12) * 100.0 + 200]       # final: mean of the last 10
    sparse = [np.arange(12) * 150.0, np.arange(12) * 150.0 + 60]
    for seed in (0, 1):
        make_run(tmp_path / f"td3-{seed}", "Hopper-v4", "td3", seed, dense[seed], 1000, 1.0, (0.1 + seed, 0.2))
        make_run(tmp_path / f"ds-{seed}", "Hopper-v4", "ds-td3", seed, sparse[seed], 500, 0.5)
    assert report.main([str(tmp_path)]) == 0
    out = capsys.readouterr()
    rows = report_rows(out.out)
    # TD3's seed-mean curve 100·i + 100 (i = 0..11, step 5,000·(i + 1)) first reaches its 750 at i = 7
    assert rows[("Hopper-v4", "td3")][2:8] == ["2", "60,000", "750 ± 100", f"{np.mean(dense):.0f} ± 100",
                                               "40,000 (67% of the steps)", "1,000"], "report: the TD3 row"
    # DS-TD3's seed-mean curve 150·i + 30 first reaches 750 at i = 5 (step 30,000)
    ds = rows[("Hopper-v4", "ds-td3")]
    assert ds[4] == f"{np.mean([r[2:].mean() for r in sparse]):.0f} ± 30" and ds[6].startswith("30,000 (50%"), ds
    assert ds[7] == "500" and ds[8] == "0.50×"
    assert rows[("Hopper-v4", "td3")][9] == "0.60 / 0.20", "report: dormant units at the end, the mean over seeds"
    assert out.err == ""                                 # nothing odd here: no warning


def test_report_figure_parses_and_its_curves_are_the_csvs(tmp_path, capsys):
    import xml.etree.ElementTree as ET
    rng = np.random.default_rng(0)
    returns = {(algo, seed): rng.normal(1000, 300, 12).round(2) for algo in ("td3", "ds-td3") for seed in (0, 1, 2)}
    for (algo, seed), r in returns.items():
        make_run(tmp_path / f"{algo}-{seed}", "Walker2d-v4", algo, seed, r, 1000, 1.0)
    assert report.main([str(tmp_path)]) == 0
    root = ET.parse(tmp_path / "report.svg").getroot()
    curves = {el.get("id"): el for el in root.iter("{http://www.w3.org/2000/svg}polyline")}
    assert set(curves) == {"Walker2d-v4/td3/mean", "Walker2d-v4/ds-td3/mean"}
    for algo in ("td3", "ds-td3"):
        data = np.array([p.split(",") for p in curves[f"Walker2d-v4/{algo}/mean"].get("data-points").split()], float)
        pixels = np.array([p.split(",") for p in curves[f"Walker2d-v4/{algo}/mean"].get("points").split()], float)
        expected = np.mean([returns[(algo, seed)] for seed in (0, 1, 2)], axis=0)
        assert np.array_equal(data[:, 0], 5000 * np.arange(1, 13)), "report figure: one point per evaluation"
        assert np.allclose(data[:, 1], expected, atol=0.006), "report figure: the curve is the seed mean"
        for axis, sign in ((0, 1), (1, -1)):             # pixels are an affine image of the data (y points down)
            slope, offset = np.polyfit(data[:, axis], pixels[:, axis], 1)
            assert sign * slope > 0 and np.allclose(pixels[:, axis], slope * data[:, axis] + offset, atol=0.06)
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polygon"))) == 2          # a ±1 std band each


def test_report_figure_is_a_grid_of_at_most_3_panels_a_row_with_round_ticks(tmp_path, capsys):
    import xml.etree.ElementTree as ET
    envs = ("Ant-v5", "HalfCheetah-v4", "Hopper-v4", "Humanoid-v4", "Walker2d-v4")
    for env in envs:
        make_run(tmp_path / env, env, "td3", 0, np.linspace(61, 1790, 60), 1000, 1.0)   # 5,000 to 300,000 steps
    assert report.main([str(tmp_path)]) == 0
    root = ET.parse(tmp_path / "report.svg").getroot()
    assert root.get("width") == "1020", "report figure: 3 panels of 340 px a row, to read at a README's width"
    corners = {}
    for panel in root.iter("{http://www.w3.org/2000/svg}g"):
        title = next(panel.iter("{http://www.w3.org/2000/svg}text"))
        corners[panel.get("id")] = (float(title.get("x")), float(title.get("y")))
    assert len({x for x, _ in corners.values()}) == 3 and len({y for _, y in corners.values()}) == 2, \
        f"svg_panel: 5 panels in 2 rows of at most 3: {corners}"
    labels = [text.text for text in root.iter("{http://www.w3.org/2000/svg}text")]
    assert labels.count("0k") == labels.count("300k") == 5, "svg_panel: the step axis ticks 0k, 100k, ... 300k"
    assert {"1000", "1500"} <= set(labels) and "1357" not in labels, "tick_values: round returns on the y axis"
    assert list(report.tick_values(0, 1e6)) == [0, 500_000, 1_000_000]
    assert list(report.tick_values(61, 1790)) == [500, 1000, 1500]


def test_report_gives_the_labs_runs_rows_and_panels_of_their_own(tmp_path, capsys):
    import xml.etree.ElementTree as ET
    for seed in (0, 1):                                  # the paper's comparison: 300k steps, 12 evaluations
        make_run(tmp_path / f"td3-{seed}", "Hopper-v4", "td3", seed, np.arange(12) * 100.0, 1000, 1.0,
                 total_steps=300_000)
        make_run(tmp_path / f"ds-{seed}", "Hopper-v4", "ds-td3", seed, np.arange(12) * 150.0, 500, 0.5,
                 total_steps=300_000)
    lab = {"td3": ({}, 100.0), "ds-td3 sparsity=0.9": ({"sparsity": 0.9}, 50.0),
           "ds-td3 sparsity=0.9 grow=gradient": ({"sparsity": 0.9, "grow": "gradient"}, 80.0)}
    for label, (flags, slope) in lab.items():            # the lab's comparison: 150k steps, 6 evaluations
        make_run(tmp_path / label.replace(" ", "_"), "Hopper-v4", label.split()[0], 0, np.arange(6) * slope,
                 100, 0.1, total_steps=150_000, **flags)
    assert report.main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    rows = list(report_rows(out).values())               # in the report's order
    assert [r[:4] for r in rows] == [["Hopper-v4, T = 300,000", "ds-td3", "2", "60,000"],
                                     ["Hopper-v4, T = 300,000", "td3", "2", "60,000"],
                                     ["Hopper-v4, T = 150,000", "ds-td3 sparsity=0.9", "1", "30,000"],
                                     ["Hopper-v4, T = 150,000", "ds-td3 sparsity=0.9 grow=gradient", "1", "30,000"],
                                     ["Hopper-v4, T = 150,000", "td3", "1", "30,000"]], \
        f"report: one row per algorithm and lab setting, the 150k runs apart from the 300k ones: {rows}"
    # the lab's rows reach the 150k TD3's final return (mean of 0..500, 250) at 250/80 -> i = 4 (25,000), and
    # 250/50 -> i = 5 (30,000); the 300k comparison is not cut to 30,000 by the shorter runs
    assert rows[3][6].startswith("25,000") and rows[2][6].startswith("30,000") and err == "", (rows, err)
    root = ET.parse(tmp_path / "report.svg").getroot()
    colours = {el.get("id"): el.get("stroke") for el in root.iter("{http://www.w3.org/2000/svg}polyline")}
    assert set(colours) == {"Hopper-v4, T = 300,000/ds-td3/mean", "Hopper-v4, T = 300,000/td3/mean",
                            "Hopper-v4, T = 150,000/td3/mean", "Hopper-v4, T = 150,000/ds-td3 sparsity=0.9/mean",
                            "Hopper-v4, T = 150,000/ds-td3 sparsity=0.9 grow=gradient/mean"}, colours
    assert len(set(colours.values())) == 4, f"report figure: td3 keeps its colour, each lab row has its own: {colours}"


def test_report_warns_in_one_line_and_never_fails_on_odd_folders(tmp_path, capsys):
    make_run(tmp_path / "a", "Hopper-v4", "td3", 0, np.arange(12) * 100.0, 1000, 1.0)
    make_run(tmp_path / "b", "Hopper-v4", "td3", 1, np.arange(8) * 100.0, 1000, 1.0)              # shorter
    make_run(tmp_path / "c", "Hopper-v4", "td3", 2, np.arange(12) * 100.0, 1000, 1.0, batch_size=256)
    with open(tmp_path / "c" / "eval.csv", "a") as f:
        f.write("65000,12\n65000,nan,1,10,1000,1000,0.5,0.5,1e9,1,0.1,0.2\n"
                "70000,inf,1,10,1000,1000,0.5,0.5,1e9,1,0.1,0.2")
    make_run(tmp_path / "empty", "Hopper-v4", "td3", 3, [], 1000, 1.0)
    make_run(tmp_path / "older", "Hopper-v4", "td3", 4, np.arange(12) * 100.0, 1000, 1.0)
    config = json.load(open(tmp_path / "older" / "config.json"))
    del config["args"]["grow"]                           # a run made before --grow existed: its default
    json.dump(config, open(tmp_path / "older" / "config.json", "w"))
    for seed, every in ((0, 5000), (1, 7000)):          # a comparison whose evaluations never fall on one step
        make_run(tmp_path / f"apart-{seed}", "Walker2d-v4", "ds-td3", seed, [1.0, 2.0], 500, 0.5, eval_every=every)
        rows = list(csv.reader(open(tmp_path / f"apart-{seed}" / "eval.csv")))
        rows[1][0], rows[2][0] = str(every), str(2 * every)
        csv.writer(open(tmp_path / f"apart-{seed}" / "eval.csv", "w", newline="")).writerows(rows)
    os.makedirs(tmp_path / "not-a-run")
    (tmp_path / "not-a-run" / "eval.csv").write_text("step,return_mean\n5000,1\n")
    assert report.main([str(tmp_path), str(tmp_path / "a"), str(tmp_path / "missing")]) == 0
    out, err = capsys.readouterr()
    warnings_ = err.splitlines()
    for expected in ("left out 3 blank, malformed or non-finite rows", "has no evaluations yet",
                     "not-a-run/config.json: No such file or directory", "missing is not a folder",
                     "Walker2d-v4: its runs share no evaluation"):
        assert sum(expected in w for w in warnings_) == 1, f"report: expected one warning with {expected!r}: {err}"
    assert all(w.startswith("report: warning: ") for w in warnings_) and "Traceback" not in err
    rows = report_rows(out)                              # a/ named twice counts once; batch_size=256 is its own row
    assert rows[("Hopper-v4", "td3")][2:4] == ["3", "40,000"] and "nan" not in out and "inf" not in out, rows
    assert rows[("Hopper-v4", "td3 batch_size=256")][2:4] == ["1", "40,000"], rows
    res = run_report(str(tmp_path / "not-a-run"))   # nothing to report: the warning says why, then an error
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.splitlines()[-1].startswith("report.py: error: no runs with evaluations below"), res.stderr



def test_report_finds_td3_by_its_settings_says_where_it_cuts_and_skips_foreign_runs(tmp_path, capsys):
    """Runs that all share a setting (--hidden 64) still find their TD3 row; a comparison cut to its shortest
    run says so; another program's config.json is left out with a warning, not a traceback."""
    for seed in (0, 1):
        make_run(tmp_path / f"td3-{seed}", "Hopper-v4", "td3", seed, np.arange(1, 13) * 100.0, 1000, 1.0, hidden=64)
        make_run(tmp_path / f"ds-{seed}", "Hopper-v4", "ds-td3", seed, np.arange(1, 13 - 2 * seed) * 150.0, 500, 0.5,
                 hidden=64)
    make_run(tmp_path / "sac", "Hopper-v4", "sac", 0, [1.0, 2.0], 1000, 1.0, total_steps="300k")
    assert report.main([str(tmp_path)]) == 0
    out = capsys.readouterr()
    row = report_rows(out.out)[("Hopper-v4", "ds-td3 hidden=64")]
    assert row[6] == "20,000 (40% of the steps)", f"report: the TD3 row is td3 hidden=64, whose final return " \
        f"to step 50,000 (550, the mean of 100..1000) the ds-td3 mean (150·i) first reaches at i = 4: {row}"
    warnings = out.err.splitlines()
    assert any("read to step 50,000, the last that all its runs reached (3 went further)" in w for w in warnings), \
        warnings
    assert any("sac/config.json: argument --algo: invalid choice: 'sac'" in w for w in warnings), warnings


def test_report_reads_every_report_flag_and_escapes_what_stdout_cannot_encode(tmp_path):
    """--report A --report B reads both; with an ASCII stdout (Windows' cp1252 has no ₀ either) the report and
    --help escape the characters they cannot print, where they used to end in a traceback."""
    for seed, folder in enumerate(("a", "b")):
        make_run(tmp_path / folder / "run", "Hopper-v4", "td3", seed, [100.0, 200.0], 1000, 1.0)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    res = subprocess.run([sys.executable, os.path.join(HERE, "report.py"), str(tmp_path / "a"), str(tmp_path / "b")],
                         capture_output=True, text=True, env=env, cwd=HERE)
    assert res.returncode == 0, res.stderr
    assert report_rows(res.stdout)[("Hopper-v4", "td3")][2] == "2", "report.py A B: the runs of both"
    assert "150 \\xb1 0" in res.stdout and "1.00\\xd7" in res.stdout, "report: ± and × are escaped in ASCII"
    res = subprocess.run([sys.executable, os.path.join(PROJECT, "dst_td3.py"), "--help"], capture_output=True,
                         text=True, env=env, cwd=HERE)
    assert res.returncode == 0 and "discount \\u03b3" in res.stdout, res.stderr


def test_report_reads_the_committed_results(tmp_path):
    """Every committed run is read (no warning), each row of the README's results table is the report's own, and
    so is each final return that the README sets beside the paper's Table 2 ("DS-TD3, here", "TD3, here")."""
    import shutil
    shutil.copytree(HERE, tmp_path / "results", ignore=shutil.ignore_patterns("__pycache__"))
    res = run_report(str(tmp_path / "results"))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("| ") and "algorithm" not in line]
    assert len(rows) >= 15 and "figure: " in res.stdout, f"report: every group of results/ has a row: {rows}"
    readme_lines = open(os.path.join(PROJECT, "README.md"), encoding="utf-8").read().splitlines()
    readme = [line for line in readme_lines if "× |" in line]   # the results table's rows
    stale = [line for line in readme if line not in rows]
    assert len(readme) >= 10 and not stale, f"README: results rows that `--report results` no longer prints: {stale}"
    finals = {}                                          # (task, algorithm): the final return of its 1M row
    for cells in map(table_cells, rows):
        if cells[3] == "1,000,000":
            finals[(cells[0].split("-v")[0], cells[1])] = cells[4]
    table = [table_cells(line) for line in readme_lines
             if line.startswith(("| final return at 1M", "| DS-TD3, here", "| TD3, here"))]
    assert len(table) == 3 and len(finals) >= 6, f"README: the 'DS-TD3, here' and 'TD3, here' rows: {table}"
    tasks = table[0][1:]
    for algo, *cells in table[1:]:
        label = algo.split(",")[0].lower().replace(" ", "-")
        shown = dict(zip(tasks, cells))
        expected = {task: finals.get((task, label), "") for task in tasks}
        assert shown == expected, f"README: the '{algo}' row beside the paper's Table 2 shows {shown}; " \
            f"`--report results` gives the final returns of the 1M rows {expected}"


def test_report_builds_the_parser_once_not_per_run(tmp_path, monkeypatch, capsys):
    """Every run's settings are read through dst_td3's command line, built once for the report, not once per run
    (which cost a report of many runs its time); the defaults come from dst_td3's table."""
    for seed in (0, 1, 2):
        make_run(tmp_path / f"td3-{seed}", "Hopper-v4", "td3", seed, [100.0, 200.0], 1000, 1.0)
    built = []
    make_parser = d.make_parser

    def counted():
        built.append(1)
        return make_parser()
    monkeypatch.setattr(d, "make_parser", counted)
    assert report.main([str(tmp_path)]) == 0 and len(built) == 1, f"report: {len(built)} parsers for 3 runs"
    assert report.DEFAULTS == {name: row.default for name, row in d.HYPERPARAMETERS.items()}


@pytest.mark.parametrize("where", ["group_runs", "draw"])
def test_ctrl_c_in_the_report_is_one_line(tmp_path, monkeypatch, capsys, where):
    make_run(tmp_path / "run", "Hopper-v4", "td3", 0, [100.0, 200.0], 1000, 1.0)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(report, where, interrupted)
    assert report.main([str(tmp_path)]) == 130
    assert capsys.readouterr().err == "report.py: interrupted\n", f"report: Ctrl-C in {where}"


def test_report_reads_odd_runs_with_dst_td3s_reader_and_names_the_file(tmp_path, capsys):
    """What the report reads is read as a resume reads it: a config.json whose env is not a task id, text that is
    not UTF-8, an eval.csv without its step or return_mean column, or a seed that is not a number, is one warning
    that names the file, and the good run beside it stays. A copy of a run folder is one seed, counted once; a td3
    run of an older version that saved settings td3 does not read, and one whose eval.csv has the older column
    names, join today's td3 row."""
    for seed in (0, 1):
        make_run(tmp_path / f"good-{seed}", "Hopper-v4", "td3", seed, [100.0, 200.0], 1000, 1.0)
    shutil.copytree(tmp_path / "good-0", tmp_path / "copy-of-good-0")
    bad = {"env-5": {"env": 5}, "env-list": {"env": ["Hopper-v4"]}, "env-null": {"env": None},
           "seed-text": {"seed": "zero"}, "seed-negative": {"seed": -3}}
    for name, args in bad.items():
        make_run(tmp_path / name, "Hopper-v4", "td3", 5, [100.0, 200.0], 1000, 1.0)
        config = json.load(open(tmp_path / name / "config.json"))
        config["args"].update(args)
        json.dump(config, open(tmp_path / name / "config.json", "w"))
    make_run(tmp_path / "latin-1", "Hopper-v4", "td3", 6, [100.0, 200.0], 1000, 1.0)
    with open(tmp_path / "latin-1" / "eval.csv", "ab") as f:
        f.write("a note: caf\u00e9\n".encode("latin-1"))
    for column in ("step", "return_mean"):
        make_run(tmp_path / f"no-{column}", "Hopper-v4", "td3", 7, [100.0, 200.0], 1000, 1.0)
        rows = list(csv.reader(open(tmp_path / f"no-{column}" / "eval.csv")))
        rows[0][rows[0].index(column)] = "something else"
        csv.writer(open(tmp_path / f"no-{column}" / "eval.csv", "w", newline="")).writerows(rows)
    make_run(tmp_path / "older", "Hopper-v4", "td3", 2, [100.0, 200.0], 1000, 1.0, lambda_in=7.0, grow="random")
    rows = list(csv.reader(open(tmp_path / "older" / "eval.csv")))
    rows[0] = [{"connections": "params_nonzero", "connections_dense": "params_dense"}.get(c, c) for c in rows[0]]
    csv.writer(open(tmp_path / "older" / "eval.csv", "w", newline="")).writerows(rows)
    assert report.main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    for name in [*bad, "latin-1", "no-step", "no-return_mean", "copy-of-good-0"]:
        lines = [line for line in err.splitlines() if f"/{name}" in line]
        assert len(lines) == 1 and lines[0].endswith("left out"), f"report: one warning names {name}: {err}"
    rows = report_rows(out)
    assert list(rows) == [("Hopper-v4", "td3")] and rows[("Hopper-v4", "td3")][2] == "3", \
        f"report: seeds 0, 1 and the older run's 2 make one td3 row: {rows}"
    assert rows[("Hopper-v4", "td3")][7] == "1,000", "report: the older column name params_nonzero is connections"
