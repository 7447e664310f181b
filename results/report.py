"""report.py: compare runs of dst_td3.py, as the README's results tables and figure do.

    python results/report.py results     the README's tables, and the figure results/report.svg
    python results/report.py runs        your own runs, and runs/report.svg

Every run folder below the given folders (config.json and eval.csv) is read. A *comparison* is the runs of one
env planned for one length T; its rows are the algorithms and the lab's settings, each over its seeds, with the
paper's metrics [DS-TD3, Table 2 and Sec. 5], and each comparison gets a panel of the figure: the seed-mean
learning curve and a ±1 std band per row, an SVG written as text (no plotting library).

A maintainer's tool: a student reading one run's code never needs it. It imports dst_td3 for what the two share
(the hyperparameters' defaults, the run files' format, the error boundary), so the two cannot drift."""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dst_td3 as d  # noqa: E402

ALGOS = d.ALL                                            # the report's order, and the figure's first colours
COLOURS = ("#d62728", "#2ca02c", "#1f77b4", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
NOT_SETTINGS = ("algo", "seed", "total_steps", "eval_every", "eval_episodes")   # what a row's label leaves out
DEFAULTS = {name: row.default for name, row in d.HYPERPARAMETERS.items()}       # older runs lack newer flags
LAST_EVALS = 10  # the paper's final return is the mean of the last 10 evaluations [DS-TD3, Table 2]
# Older versions' columns: dormant units [ReDo], which dst_td3.py logged until 2026-12-07, and earlier names
FIELDS = d.EVAL_FIELDS + ["dormant_actor", "dormant_critic"]
RENAMED = {"params_nonzero": "connections", "params_dense": "connections_dense"}   # before 2026-12-02


def warn(message):
    d.say(f"report: warning: {message}", sys.stderr)


def curve_metrics(steps, returns, target=None):
    """The paper's measures of learning curves [DS-TD3, Table 2 and Sec. 5]. returns: (runs, evaluations), one
    curve per seed, at the same steps. Returns per seed its final return, the mean of its last 10 evaluations,
    and its learning-curve area, the mean of all its evaluations (the area under the curve over its length); and
    the first step at which the seeds' mean curve reaches `target` (dense TD3's final return), or None."""
    final = returns[:, -LAST_EVALS:].mean(axis=1)
    area = returns.mean(axis=1)
    first = None
    if target is not None:
        reached = steps[returns.mean(axis=0) >= target]  # the steps at or above it
        if len(reached):
            first = reached[0]
    return final, area, first


def read_run(path, parser):
    """One run folder, read with dst_td3's reader and brought to today's form: its settings, checked as the command
    line checks them, and the evaluations of eval.csv whose every cell is a finite number, by column name. Or
    None, with a warning that names the file and why."""
    config_path = os.path.join(path, "config.json")
    try:
        config = d.read_json(d.read_text(config_path), config_path)
        saved = config.get("args") if type(config) is dict else None
        if type(saved) is not dict or type(saved.get("env")) is not str:
            return warn(f"{config_path} has no settings of dst_td3.py (args, with a task id as env); left out")
        args = vars(d.saved_args(config, config_path, parser))
        header, *rows = d.parsed("eval.csv", d.read_text(os.path.join(path, "eval.csv")), path) or [[]]
    except d.RunError as err:
        return warn(f"{err.args[0]}; left out")
    except OSError as err:
        return warn(f"{err.filename or path}: {err.strerror}; left out")
    header = [RENAMED.get(field, field) for field in header]
    if "step" not in header or "return_mean" not in header:
        return warn(f"{path}/eval.csv has no step and return_mean columns; left out")
    good = []
    for row in rows:
        try:
            numbers = [float(cell) for cell in row]
        except ValueError:
            continue
        if len(row) == len(header) and np.isfinite(numbers).all():
            good.append(dict(zip(header, numbers)))
    if len(good) < len(rows):
        warn(f"left out {len(rows) - len(good)} blank, malformed or non-finite rows of {path}/eval.csv")
    if not good:
        return warn(f"{path} has no evaluations yet; left out")
    run = {"args": args, "path": path}
    for field in FIELDS:
        run[field] = np.array([row.get(field, np.nan) for row in good])
    return run


def row_key(args):
    """A row of the report: the algorithm, and each setting of HYPERPARAMETERS that the run set away from its
    default (the lab's ones) and the algorithm reads, as a tuple of (name, value) pairs. An older version saved
    settings that an algorithm does not read (a td3 run's lambda_in): they make no row of their own."""
    settings = []
    for name in d.HYPERPARAMETERS:
        read = args["algo"] in d.HYPERPARAMETERS[name].read_by
        if name not in NOT_SETTINGS and read and args[name] != DEFAULTS[name]:
            settings.append((name, args[name]))
    return args["algo"], tuple(settings)


def td3_key(key):
    """The key of the dense TD3 row that a row is compared with: td3, with the row's settings that td3 reads."""
    _, settings = key
    read = tuple((name, value) for name, value in settings if "td3" in d.HYPERPARAMETERS[name].read_by)
    return "td3", read


def label_of(key):
    """A row's label: the algorithm and its settings, "ds-td3 sparsity=0.9"."""
    algo, settings = key
    return " ".join([algo] + [f"{name}={value}" for name, value in settings])


def find_runs(folders):
    """The run folders below the folders, each once (a run below two of them counts once)."""
    found = {}                                           # {real path: path}
    for top in folders:
        if not os.path.isdir(top):
            warn(f"{top} is not a folder; left out")
            continue
        below = [path for path, _, files in sorted(os.walk(top)) if {"config.json", "eval.csv"} & set(files)]
        if not below:
            warn(f"no runs below {top}")
        for path in below:
            found.setdefault(os.path.realpath(path), path)
    return list(found.values())


def group_runs(folders, parser):
    """{(env, T): {row key: [runs]}} of every run below the folders, in the report's order: the comparisons by
    env, the longest runs first; a comparison's rows in the order of ALGOS, then by their settings; runs by seed."""
    groups = {}
    for path in find_runs(folders):
        run = read_run(path, parser)
        if run is None:
            continue
        comparison = (run["args"]["env"], run["args"]["total_steps"])
        runs = groups.setdefault(comparison, {}).setdefault(row_key(run["args"]), [])
        twins = [other["path"] for other in runs if other["args"]["seed"] == run["args"]["seed"]]
        if twins:                                        # a copy of a run folder: one seed, counted once
            warn(f"{path} is seed {run['args']['seed']} of the same settings as {twins[0]}; left out")
            continue
        runs.append(run)
    ordered = {}
    for env, T in sorted(groups, key=lambda comparison: (comparison[0], -comparison[1])):
        rows = groups[(env, T)]
        keys = sorted(rows, key=lambda key: (ALGOS.index(key[0]), label_of(key)))
        ordered[(env, T)] = {key: sorted(rows[key], key=lambda run: run["args"]["seed"]) for key in keys}
    return ordered


def group_metrics(runs, steps):
    """The paper's metrics of one row's runs at the evaluation steps of its comparison."""
    returns = np.array([[run["return_mean"][run["step"] == s][0] for s in steps] for run in runs])   # (runs, steps)
    final, area, _ = curve_metrics(steps, returns)
    metrics = {"seeds": len(runs), "steps": steps[-1], "curve_steps": steps, "returns": returns,
               "curve_mean": returns.mean(axis=0), "curve_std": returns.std(axis=0),
               "final": (final.mean(), final.std()), "area": (area.mean(), area.std())}
    for field in ("connections", "flops_vs_dense", "dormant_actor", "dormant_critic"):   # at the last step
        metrics[field] = np.mean([run[field][run["step"] <= steps[-1]][-1] for run in runs])   # NaN: older runs
    return metrics


def shared_steps(rows):
    """The evaluation steps that every run of a comparison has, in order."""
    steps = None
    for runs in rows.values():
        for run in runs:
            if steps is None:
                steps = set(run["step"])
            steps &= set(run["step"])
    return np.array(sorted(steps), dtype=int)


def print_row(name, label, m, dense):
    """One row of the report's table, in Markdown (README, Results); dense: the TD3 row of its comparison."""
    when = "—"                                           # no TD3 row to compare with
    if dense is not None:
        hit = curve_metrics(m["curve_steps"], m["returns"], dense["final"][0])[2]
        when = "not reached"
        if hit is not None:
            when = f"{hit:,} ({hit / m['steps']:.0%} of the steps)"
    dormant = "—"
    if not np.isnan(m["dormant_actor"]):
        dormant = f"{m['dormant_actor']:.2f} / {m['dormant_critic']:.2f}"
    cells = [name, label, str(m["seeds"]), f"{m['steps']:,}", f"{m['final'][0]:.0f} ± {m['final'][1]:.0f}",
             f"{m['area'][0]:.0f} ± {m['area'][1]:.0f}", when, f"{m['connections']:,.0f}",
             f"{m['flops_vs_dense']:.2f}×", dormant]
    d.say("| " + " | ".join(cells) + " |")


def svg(name, text=None, **attributes):
    """One SVG element, as text: svg("rect", x=1, fill="none") -> '<rect x="1" fill="none"/>'."""
    tag = name + "".join(f' {key.replace("_", "-")}="{value}"' for key, value in attributes.items())
    if text is None:
        return f"<{tag}/>"
    return f"<{tag}>{text}</{name}>"


def tick_values(lo, hi):
    """Round values for an axis from lo to hi: about four, 1, 2 or 5 times a power of 10 apart."""
    wanted = (hi - lo) / 4
    power = 10 ** math.floor(math.log10(wanted))
    step = min(m * power for m in (1, 2, 5, 10) if m * power >= wanted)
    return np.arange(math.ceil(lo / step) * step, hi + step * 1e-6, step)   # hi too, if it is one


PANEL_W, PANEL_H = 340, 250                              # a panel's size in pixels, its legend below it
PANELS_PER_ROW = 3                                       # a README is about 900 px wide


def svg_panel(name, curves, colours, x0, y0, left=55, top=30, bottom=40):
    """One panel, its top left corner at (x0, y0): a frame with gridlines and ticks (tick_values), and per row of
    the report the seed-mean curve and a ±1 std band, with a legend below. Each curve also carries the numbers it
    was drawn from (data-points: step,return pairs), so that a reader can check it."""
    x_max = max(c["curve_steps"][-1] for c in curves.values())
    y_lo = min((c["curve_mean"] - c["curve_std"]).min() for c in curves.values())
    y_hi = max((c["curve_mean"] + c["curve_std"]).max() for c in curves.values()) + 1e-9
    plot_w = PANEL_W - left - 25
    plot_h = PANEL_H - top - bottom
    px = x0 + left                                       # (px, py): the pixel of the data point (0, y_lo)
    py = y0 + top + plot_h

    def points(steps, returns):                          # data -> pixels; the y axis points down in SVG
        xs = px + np.asarray(steps) * plot_w / x_max
        ys = py - (np.asarray(returns) - y_lo) * plot_h / (y_hi - y_lo)
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))

    out = [svg("text", name, x=px + plot_w / 2, y=py - plot_h - 10, text_anchor="middle"),
           svg("text", "steps", x=px + plot_w, y=py + 30, text_anchor="end")]
    for step in tick_values(0, x_max):                   # a gridline and a label at each tick of each axis
        x = px + step * plot_w / x_max
        out.append(svg("line", x1=x, y1=py, x2=x, y2=py - plot_h, stroke="#e4e4e4"))
        out.append(svg("text", f"{step / 1000:g}k", x=x, y=py + 14, text_anchor="middle"))
    for value in tick_values(y_lo, y_hi):
        y = py - (value - y_lo) * plot_h / (y_hi - y_lo)
        out.append(svg("line", x1=px, y1=y, x2=px + plot_w, y2=y, stroke="#e4e4e4"))
        out.append(svg("text", f"{value:g}", x=px - 4, y=y + 4, text_anchor="end"))
    out.append(svg("rect", x=px, y=py - plot_h, width=plot_w, height=plot_h, fill="none", stroke="#444"))
    for i, (label, c) in enumerate(curves.items()):
        steps, mean, std = c["curve_steps"], c["curve_mean"], c["curve_std"]
        band = points(np.r_[steps, steps[::-1]], np.r_[mean + std, (mean - std)[::-1]])   # upper edge, lower back
        data = " ".join(f"{s},{r:.2f}" for s, r in zip(steps, mean))
        legend_y = y0 + PANEL_H + 6 + 14 * i
        out.append(svg("polygon", id=f"{name}/{label}/band", fill=colours[label], fill_opacity=0.2, points=band))
        out.append(svg("polyline", id=f"{name}/{label}/mean", fill="none", stroke=colours[label], stroke_width=1.5,
                       points=points(steps, mean), data_points=data))
        out.append(svg("line", x1=px, y1=legend_y, x2=px + 20, y2=legend_y, stroke=colours[label], stroke_width=2))
        out.append(svg("text", label, x=px + 25, y=legend_y + 4))
    return svg("g", "\n".join(out), id=f"panel-{name}")


def draw(panels, path):
    """The figure: a panel per comparison, PANELS_PER_ROW a row; a colour per row label, the paper's first."""
    labels = list(ALGOS)
    for curves in panels.values():
        for label in curves:
            if label not in labels:
                labels.append(label)
    colours = {label: COLOURS[i % len(COLOURS)] for i, label in enumerate(labels)}
    row_h = PANEL_H + 10 + 14 * max(len(curves) for curves in panels.values())   # a panel and its legend
    n_rows = math.ceil(len(panels) / PANELS_PER_ROW)
    body = [svg("rect", width="100%", height="100%", fill="white"),
            svg("text", "evaluation return, mean over seeds ± 1 std", x=55, y=n_rows * row_h + 8)]
    for i, (name, curves) in enumerate(panels.items()):
        x0 = PANEL_W * (i % PANELS_PER_ROW)
        y0 = row_h * (i // PANELS_PER_ROW)
        body.append(svg_panel(name, curves, colours, x0, y0))
    figure = svg("svg", "\n".join(body), xmlns="http://www.w3.org/2000/svg",
                 width=PANEL_W * min(len(panels), PANELS_PER_ROW), height=n_rows * row_h + 15,
                 font_family="sans-serif", font_size=11)
    d.write_atomically(path, lambda f: f.write(figure + "\n"))


def report(folders):
    """Read every run below the folders, print the table and draw the figure into the first folder. A
    comparison is read at the evaluation steps that all its runs have."""
    d.say("| env | algorithm | seeds | steps | final return (last 10 evals) | learning-curve area (mean of all evals) "
          "| reaches TD3's final return at | connections at the end | training FLOPs vs dense "
          "| dormant units at the end (actor / critics) |")
    d.say("|---|---|---|---|---|---|---|---|---|---|")
    groups = group_runs(folders, d.make_parser())      # one parser reads every run's settings
    panels = {}
    for (env, T), rows in groups.items():
        name = env
        if sum(e == env for e, _ in groups) > 1:        # one env planned for two lengths: say which
            name = f"{env}, T = {T:,}"
        steps = shared_steps(rows)
        if not steps.size:                               # e.g. two --eval-every values that never meet
            warn(f"{name}: its runs share no evaluation step; left out")
            continue
        longer = sum(run["step"][-1] > steps[-1] for runs in rows.values() for run in runs)
        if longer:
            warn(f"{name}: read to step {steps[-1]:,}, the last that all its runs reached ({longer} went further)")
        metrics = {key: group_metrics(runs, steps) for key, runs in rows.items()}
        for key, m in metrics.items():
            print_row(name, label_of(key), m, metrics.get(td3_key(key)))
        panels[name] = {label_of(key): m for key, m in metrics.items()}
    if not panels:
        raise d.RunError(f"no runs with evaluations below {', '.join(folders)}")
    path = os.path.join(folders[0], "report.svg")
    draw(panels, path)
    d.say(f"figure: {path}")
    return 0


def run_command(argv):
    """Parse the command line, then report."""
    parser = d.Parser(description="Compare runs of dst_td3.py: the README's tables and figure.")
    parser.add_argument("folders", nargs="+", metavar="DIR",
                        help="folders with run folders below them; the figure goes to the first, DIR/report.svg")
    return report(parser.parse_args(argv).folders)


def main(argv=None):
    """python results/report.py DIR [DIR ...], inside dst_td3's error boundary."""
    if argv is None:
        argv = sys.argv[1:]
    return d.guarded("report.py", run_command, list(argv))


if __name__ == "__main__":
    sys.exit(main())
