"""The course kit for dst_td3.py: write a student's folder, grade a student's file, set up Gradescope.

    python course/course.py handout DIR [--exercises 1,4,7]     a student's folder, the chosen bodies blank
    python course/course.py grade [FILE] [--exercises 1,4,7] [--seed N] [--final] [--json FILE]
    python course/course.py autograder DIR                      the files Gradescope runs

How a grade is made. Each exercise is one or a few functions of dst_td3.py (EXERCISES). Its grade runs the
student's function on cases drawn to reach every term and branch of its rule (the case_* functions below) and
compares what it returns, and every array it writes into, with what the reference does on the same case: numbers
in float64 within a tolerance, shapes, dtypes and the state of the random generator exactly.
Every other function of dst_td3.py that an exercise's function calls is replaced by a stub that replays the
reference's calls: it checks the arguments it receives against the recorded ones (passing the online critics
where the targets belong is named there) and returns the recorded result, writing what the reference wrote into
the arrays it was given. So an exercise is graded alone: a mistake in another exercise, or in a helper, costs it
nothing, and one in this exercise costs this exercise only.
The recordings come from the reference, live, on the instructor's side (the dst_td3.py beside this folder). A
handout carries them as data (course/cases.npz, recorded at seed 0), and no reference code, so the student's
`grade` gives the instructor's grade on the same file. `--seed N` draws other cases: the instructor's only.
"""
import argparse
import ast
import concurrent.futures
import functools
import importlib.util
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)                          # the folder of dst_td3.py
CASES_FILE = os.path.join(HERE, "cases.npz")                  # in a handout only: the recorded cases
HANDOUT_SEED = 0
EXERCISE_TIMEOUT = 120  # seconds for one exercise: a student's endless loop costs its points, no more

# One row per exercise, in the order dst_td3.py reads them. `returns` names what each function returns, in the
# rule's words; the README's teaching table and the student's sheet are printed from these rows.
EXERCISES = [
    {"number": 1, "functions": ["masked_linear_backward"], "minutes": 20, "points": 8,
     "rule": "return dx = dy @ Wᵀ, dW = (xᵀ @ dy)·M and db = the sum of dy over the batch"},
    {"number": 2, "functions": ["relu_backward", "tanh_backward", "mse_loss"], "minutes": 15, "points": 8,
     "rule": "pass the gradient through ReLU (dz = dh where z > 0, else 0) and tanh (dz = dy·(1 - y²)), and "
             "return L = Σ_twins mean_B (pred - target)² with dpred = 2·(pred - target)/B"},
    {"number": 3, "functions": ["er_probability", "erdos_renyi_mask"], "minutes": 15, "points": 6,
     "rule": "return p = λ·(n_in + n_out)/(n_in·n_out), capped at 1 (Eq. 1), and a 0/1 mask of the given dtype "
             "with each connection present where rng.random((n_in, n_out)) < p"},
    {"number": 4, "functions": ["drop_and_grow"], "minutes": 40, "points": 10,
     "rule": "drop the ⌈η·n⌉ positive and the ⌈η·n⌉ negative weights closest to 0, and grow as many at weight 0 "
             "among the positions absent before the update: at random, or where dW_dense is largest in magnitude "
             "(Alg. 2)"},
    {"number": 5, "functions": ["maintain_sparsity"], "minutes": 30, "points": 8,
     "rule": "keep the k weights of largest magnitude in the target matrix, set the others to 0 in place, and "
             "return how many were zeroed (Alg. 3)"},
    {"number": 6, "functions": ["adam_step"], "minutes": 25, "points": 8,
     "rule": "g = ∇L + wd·W, m ← β1·m + (1-β1)·g, v ← β2·v + (1-β2)·g², W ← W - lr·m̂/(√v̂ + ε) with "
             "m̂ = m/(1-β1^t) and v̂ = v/(1-β2^t)"},
    {"number": 7, "functions": ["td3_target"], "minutes": 25, "points": 8,
     "rule": "return y = r + γ·(1 - terminated)·min(Q'1(s', ã), Q'2(s', ã)) with ã = clip(π'(s') + clip(ξ, -c, c), "
             "lo, hi)"},
    {"number": 8, "functions": ["actor_loss_grads"], "minutes": 30, "points": 10,
     "rule": "return -mean(Q_θ1(s, π(s))) and its gradient w.r.t. every actor parameter, chaining ∂Q1/∂a from "
             "critic_backward into actor_backward"},
    {"number": 9, "functions": ["soft_update"], "minutes": 10, "points": 4,
     "rule": "θ' ← τ·θ + (1-τ)·θ' for every trainable array of the target, written into its arrays (Eq. 6)"},
    {"number": 10, "functions": ["topology_update"], "minutes": 20, "points": 6,
     "rule": "drop_and_grow in each sparse layer and each critic twin, and set Adam's m and v of every dropped "
             "connection to 0"},
    {"number": 11, "functions": ["train_iteration"], "minutes": 30, "points": 10,
     "rule": "sample, target, critic step, and every d-th iteration the actor step, the soft updates and "
             "MaintainSparsity; a topology update every e iterations (Alg. 1)"},
    {"number": 12, "functions": ["train"], "minutes": 40, "points": 14,
     "rule": "for t = 1..T: act, step the env, store (s, a, r, s', terminated), reset at an episode's end, "
             "train after the warm-up, yield (t, log), and evaluate every eval_every steps"},
]
RETURNS = {  # what each graded function returns, in the rule's words
    "masked_linear_backward": ("dx", "dW", "db"), "relu_backward": "dz", "tanh_backward": "dz",
    "mse_loss": ("L", "dpred"), "er_probability": "p", "erdos_renyi_mask": "the mask M",
    "drop_and_grow": ("dropped", "grown"), "maintain_sparsity": "n_extra (how many were zeroed)",
    "adam_step": "its return value (None)", "td3_target": "y", "actor_loss_grads": ("the loss", "the gradients"),
    "soft_update": "its return value (None)", "topology_update": "the counts",
    "train_iteration": "the log", "train": "the yielded (t, log) pairs",
}
UNORDERED = {"drop_and_grow"}      # returns sets of flat indices: any order is right
LIVE = {"as_stack", "without_masks"}   # return views of their input, which a stub's copy could not be: run as written
SCRATCH = ("g_", "tmp_flat")       # Adam's scratch vectors (adam_init): what is left in them is no result

# The final task (instructor only): the student's whole file trains DS-TD3 on Pendulum-v1 at 50 % sparsity, the
# README's first run. A seed passes when an evaluation within the budget reaches the threshold.
FINAL_TASK = {"argv": ["--env", "Pendulum-v1", "--total-steps", "15000", "--learning-starts", "1000", "--hidden",
                       "64", "--sparsity", "0.5", "--update-period", "500", "--eval-every", "1000",
                       "--eval-episodes", "5"],
              "threshold": -300.0, "seeds": [0, 1, 2], "points_per_seed": 10}


class CourseError(Exception):
    """Bad input to a course command: one line, exit code 2."""


class Mistake(Exception):
    """What a graded function did otherwise than the rule: one line that names the function and the term."""


# =============================================================================================================
# 1. A small environment of the kit's own, for exercise 12: no MuJoCo and no BLAS kernel decides a grade.
# =============================================================================================================
class CourseEnv:
    """A point pushed along a line: obs (3,) = position, velocity, and a constant 1; action (2,) in [lo, hi].
    An episode is terminated when |position| > 1 (it fell off) and truncated after max_steps steps."""
    low = np.array([-1.0, -0.5])
    high = np.array([1.0, 2.0])

    def __init__(self, max_steps=3):
        self.max_steps = max_steps
        self.rng = np.random.default_rng(0)
        self.x = np.zeros(2)
        self.t = 0

    def observe(self):
        return np.array([self.x[0], self.x[1], 1.0])

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x = self.rng.uniform(-0.6, 0.6, size=2)
        self.t = 0
        return self.observe(), {}

    def step(self, act):
        self.x[1] += 0.5 * act[0] - 0.2 * act[1]
        self.x[0] += self.x[1]
        self.t += 1
        rew = -float(self.x[0] ** 2) - 0.1 * float(np.sum(np.square(act)))
        return self.observe(), rew, bool(abs(self.x[0]) > 1.0), self.t >= self.max_steps, {}


# =============================================================================================================
# 2. Values as data: the cases, the results and the recorded calls, copied and written without pickle.
# =============================================================================================================
def encode(value, arrays):
    """A JSON-able tree of a value; its arrays are appended to `arrays` (copies), the tree holds their index.
    An array of a dict that is a view of another array of that dict (with_flat's W1 of flat) stays a view."""
    if isinstance(value, np.ndarray):
        arrays.append(np.array(value))
        return {"array": len(arrays) - 1}
    if isinstance(value, np.generic):
        arrays.append(np.array(value))
        return {"scalar": len(arrays) - 1}
    if isinstance(value, np.random.Generator):
        return {"rng": value.bit_generator.state}
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"dtype": np.dtype(value).name}
    if isinstance(value, CourseEnv):
        return {"env": encode(vars(value), arrays)}
    if isinstance(value, tuple):
        return {"tuple": [encode(item, arrays) for item in value]}
    if isinstance(value, list):
        return {"list": [encode(item, arrays) for item in value]}
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            base = view_base(value, item)
            if base is None:
                items.append([key, encode(item, arrays)])
            else:
                offset = (item.__array_interface__["data"][0] - value[base].__array_interface__["data"][0])
                items.append([key, {"view": base, "offset": offset // item.itemsize, "shape": list(item.shape)}])
        return {"dict": items}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"encode: cannot record a {type(value).__name__}")


def view_base(container, item):
    """The key of the array of `container` that `item` is a contiguous view of, or None."""
    if not isinstance(item, np.ndarray) or item.base is None or not item.flags.c_contiguous:
        return None
    for key, other in container.items():
        if other is item.base and other is not item:
            return key
    return None


def decode(tree, arrays):
    if not isinstance(tree, dict):
        return tree
    if "array" in tree:
        return np.array(arrays[tree["array"]])
    if "scalar" in tree:
        return np.array(arrays[tree["scalar"]])[()]
    if "rng" in tree:
        rng = np.random.default_rng()
        rng.bit_generator.state = tree["rng"]
        return rng
    if "dtype" in tree:
        return np.dtype(tree["dtype"]).type
    if "env" in tree:
        env = CourseEnv.__new__(CourseEnv)
        vars(env).update(decode(tree["env"], arrays))
        return env
    if "tuple" in tree:
        return tuple(decode(item, arrays) for item in tree["tuple"])
    if "list" in tree:
        return [decode(item, arrays) for item in tree["list"]]
    out = {}
    for key, item in tree["dict"]:                       # bases first, then the views of them
        if not (isinstance(item, dict) and "view" in item):
            out[key] = decode(item, arrays)
    for key, item in tree["dict"]:
        if isinstance(item, dict) and "view" in item:
            size = math.prod(item["shape"])
            out[key] = out[item["view"]][item["offset"]:item["offset"] + size].reshape(item["shape"])
    return {key: out[key] for key, _ in tree["dict"]}     # in the recorded order


def clone(value):
    """A deep copy that keeps a network's views of its flat vector."""
    arrays = []
    tree = encode(value, arrays)
    return decode(tree, arrays)


def save_data(path, data):
    arrays = []
    tree = json.dumps(encode(data, arrays))
    np.savez_compressed(path, tree=np.array(tree), **{f"a{i}": a for i, a in enumerate(arrays)})


def load_data(path):
    with np.load(path, allow_pickle=False) as f:
        arrays = [f[f"a{i}"] for i in range(len(f.files) - 1)]
        return decode(json.loads(str(f["tree"])), arrays)


def write_into(target, after):
    """Make `target` hold `after`, in place: what a stub writes into the arguments it was given."""
    if isinstance(target, np.ndarray) and isinstance(after, np.ndarray) and target.shape == after.shape:
        np.copyto(target, after, casting="unsafe")
    elif isinstance(target, np.random.Generator):
        target.bit_generator.state = after.bit_generator.state
    elif isinstance(target, CourseEnv):
        for key, item in vars(after).items():
            if isinstance(getattr(target, key, None), IN_PLACE):
                write_into(getattr(target, key), item)
            else:
                setattr(target, key, clone(item))
    elif isinstance(target, dict) and isinstance(after, dict):
        for key, item in after.items():
            if isinstance(target.get(key), IN_PLACE):
                write_into(target[key], item)
            else:
                target[key] = clone(item)


IN_PLACE = (np.ndarray, dict, np.random.Generator, CourseEnv)   # what write_into writes into, not over


# =============================================================================================================
# 3. Comparing a result with the reference's, in the rule's words
# =============================================================================================================
def tolerance(want):
    if want.dtype == np.float32:
        return 1e-6, 1e-4                                # (absolute, relative)
    return 1e-9, 1e-7


def difference(got, want, where):
    """None if got is want (numbers within tolerance), else one phrase: where they differ, and by how much."""
    if isinstance(want, np.ndarray):
        return array_difference(got, want, where)
    if isinstance(want, np.random.Generator):
        if not isinstance(got, np.random.Generator) or got.bit_generator.state != want.bit_generator.state:
            return (f"{where} is left in another state than the rule's: it is drawn from otherwise, or in another "
                    "order, than the docstring says")
        return None
    if isinstance(want, CourseEnv):
        return difference(vars(got), vars(want), where) if isinstance(got, CourseEnv) else f"{where} is no env"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{where} is a {type(got).__name__}, expected a dict"
        keys = [key for key in want if not str(key).startswith(SCRATCH)]
        missing = [key for key in keys if key not in got]
        extra = [key for key in got if key not in want and not str(key).startswith(SCRATCH)]
        if missing:
            return f"{where} has no {missing[0]!r}"
        if extra:
            return f"{where} has a key the rule does not give: {extra[0]!r}"
        for key in keys:
            found = difference(got[key], want[key], f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"{where} is {short(got)}, expected {len(want)} values"
        for i, (g, w) in enumerate(zip(got, want)):
            found = difference(g, w, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(want, (bool, np.bool_)) or want is None or isinstance(want, str):
        return None if type(got) is type(want) and got == want else f"{where} is {short(got)}, expected {want!r}"
    if isinstance(want, (int, float, np.number)):
        if isinstance(got, np.ndarray) and got.size == 1:
            got = got.reshape(-1)[0]
        if not isinstance(got, (int, float, np.number)) or isinstance(got, bool):
            return f"{where} is {short(got)}, expected the number {want:.6g}"
        if not abs(float(got) - float(want)) <= 1e-9 + 1e-7 * abs(float(want)):
            return f"{where} is {float(got):.6g}, the rule gives {float(want):.6g}{hint(float(got), float(want))}"
        return None
    return None if got == want else f"{where} is {short(got)}, expected {want!r}"


def short(value):
    text = repr(value) if not isinstance(value, np.ndarray) else f"an array of shape {value.shape}"
    return text if len(text) < 60 else text[:57] + "..."


def array_difference(got, want, where):
    if not isinstance(got, np.ndarray):
        return f"{where} is {short(got)}, expected an array of shape {want.shape} and dtype {want.dtype}"
    if got.shape != want.shape:
        return f"{where} has shape {got.shape}, expected {want.shape}"
    integers = np.issubdtype(got.dtype, np.integer) and np.issubdtype(want.dtype, np.integer)
    if got.dtype != want.dtype and not integers:
        return f"{where} has dtype {got.dtype}, expected {want.dtype}"
    if got.dtype == bool or integers:
        bad = got != want
    else:
        atol, rtol = tolerance(want)
        same_nan = np.isnan(got) & np.isnan(want)
        bad = ~((np.abs(got - want) <= atol + rtol * np.abs(want)) | same_nan)
        bad |= (want == 0) & (got != 0)                  # an absent weight, a flushed moment: exactly 0 stays 0
    if not bad.any():
        return None
    i = tuple(int(j) for j in np.argwhere(bad)[0])
    place = f" at {list(i)}" if i else ""
    g, w = float(got[i]), float(want[i])
    return (f"{where} is {g:.6g}{place}, the rule gives {w:.6g} ({int(bad.sum())} of {bad.size} entries differ)"
            f"{array_hint(got, want)}")


def hint(g, w):
    """A known kind of mistake that a wrong number shows: a flipped sign, or a constant factor."""
    if w != 0 and abs(g + w) <= 1e-7 * abs(w):
        return ": the sign is flipped"
    if w != 0 and g != 0:
        return f" ({g / w:.4g}× the rule's)"
    return ""


def array_hint(got, want):
    got = got.astype(float)
    want = want.astype(float)
    if np.allclose(got, -want, rtol=1e-6, atol=1e-12):
        return ": the sign is flipped"
    nonzero = np.abs(want) > 1e-12
    if nonzero.sum() > 1 and (np.abs(got[~nonzero]) <= 1e-12).all():
        ratio = got[nonzero] / want[nonzero]
        if ratio[0] != 0 and np.allclose(ratio, ratio[0], rtol=1e-6):
            return f": every entry is {ratio[0]:.4g}× the rule's"
    return ""


# =============================================================================================================
# 4. Recording the reference's calls, and stubs that replay them
# =============================================================================================================
def callees(source, names, module_functions):
    """The functions of the module that the named functions' bodies call (or pass on), by the syntax tree."""
    found = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and inner.id in module_functions and inner.id not in names:
                    found.add(inner.id)
    return sorted(found - LIVE)


def bind(params, defaults, args, kwargs):
    """The arguments of one call by parameter name, defaults filled in."""
    bound = dict(zip(params, args))
    bound.update(kwargs)
    for name in params:
        if name not in bound and name in defaults:
            bound[name] = defaults[name]
    return bound


def signature_of(function):
    params = list(inspect.signature(function).parameters.values())
    names = [p.name for p in params]
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return names, defaults


class Recorder:
    """Wraps a reference function: calls it, and records the arguments before and after and the result. Only the
    graded function's own calls are recorded, not the calls the callees make in turn."""

    def __init__(self, name, function, calls, depth):
        self.name, self.function, self.calls, self.depth = name, function, calls, depth
        self.params, self.defaults = signature_of(function)

    def __call__(self, *args, **kwargs):
        if self.depth[0] > 0:
            return self.function(*args, **kwargs)
        bound = bind(self.params, self.defaults, args, kwargs)
        before = clone(bound)
        self.depth[0] += 1
        try:
            out = self.function(*args, **kwargs)
        finally:
            self.depth[0] -= 1
        self.calls.append({"name": self.name, "before": before, "after": clone(bound), "out": clone(out)})
        return out


ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


def ordinal(n):
    return ORDINALS.get(n, f"{n}th")


class Replay:
    """Stands in for a function the graded one calls: finds the recorded call with these arguments, writes what the
    reference wrote into them, and returns a copy of its result. Arguments that match no recorded call are the
    graded function's mistake, named against the next call the rule makes."""

    def __init__(self, graded, name, calls, params, defaults):
        self.graded, self.name, self.calls = graded, name, calls
        self.params, self.defaults = params, defaults
        self.used = [False] * len(calls)

    def __call__(self, *args, **kwargs):
        bound = bind(self.params, self.defaults, args, kwargs)
        unknown = [key for key in bound if key not in self.params]
        if unknown:
            raise Mistake(f"{self.graded}: calls {self.name} with an argument it does not take: {unknown[0]}")
        order = [i for i in range(len(self.calls)) if not self.used[i]]
        order += [i for i in range(len(self.calls)) if self.used[i]]
        for i in order:
            if difference(bound, self.calls[i]["before"], "") is None:
                self.used[i] = True
                write_into(bound, self.calls[i]["after"])
                return clone(self.calls[i]["out"])
        if not self.calls:
            raise Mistake(f"{self.graded}: calls {self.name}, which the rule does not call here")
        if all(self.used):
            raise Mistake(f"{self.graded}: calls {self.name} more often than the rule ({len(self.calls)} times), "
                          "or with other arguments")
        i = self.used.index(False)
        which = f"the {ordinal(i + 1)} call of {self.name}" if len(self.calls) > 1 else self.name
        for name in self.params:
            if name in self.calls[i]["before"]:
                found = difference(bound.get(name), self.calls[i]["before"][name], name)
                if found:
                    raise Mistake(f"{self.graded}: {which} gets another {name} than the rule's: {found}")
        raise Mistake(f"{self.graded}: {which} gets other arguments than the rule's")


# =============================================================================================================
# 5. Running a case: the graded function on copies of the case's values, its callees recorded or replayed
# =============================================================================================================
def run_case(module, case, recorded=None, calls=None):
    """Run one case on module: with recorded=None the module is the reference, and its calls of case["callees"]
    are appended to `calls`; otherwise they are replayed from `recorded`. Returns {"returns": what each call
    returned, "written": the values of case["written"] after each call}."""
    state = clone(case["state"])
    saved = {name: getattr(module, name, None) for name in case["callees"]}
    stubs = {}
    depth = [0]
    for name in case["callees"]:
        if recorded is None:
            stubs[name] = Recorder(name, saved[name], calls, depth)
        else:
            mine = [call for call in recorded if call["name"] == name]
            params, defaults = case["signatures"][name]
            stubs[name] = Replay(case["function"], name, mine, params, defaults)
    returns = []
    written = []
    try:
        for name, stub in stubs.items():
            setattr(module, name, stub)
        function = getattr(module, case["function"])
        for call in case["calls"]:
            args = [state[key] for key in call["args"]]
            kwargs = {name: state[key] for name, key in call["kwargs"].items()}
            out = function(*args, **kwargs)
            if inspect.isgenerator(out):
                out = list(out)
            returns.append(clone(out))
            written.append(clone({key: state[key] for key in case["written"]}))
    finally:
        for name, function in saved.items():
            setattr(module, name, function)
    return {"returns": returns, "written": written}


def result_difference(case, got, want):
    """The first way the student's run of a case differs from the reference's, as one line, or None: an rng never
    drawn from, then call by call what it returned and what it wrote."""
    name = case["function"]
    n_calls = len(case["calls"])
    for key in case["written"]:
        start = case["state"][key]
        if isinstance(start, np.random.Generator):
            untouched = got["written"][-1][key].bit_generator.state == start.bit_generator.state
            if untouched and want["written"][-1][key].bit_generator.state != start.bit_generator.state:
                return f"{name}: {key} is never drawn from: the docstring names the rng calls to make"
    for i in range(n_calls):
        which = f" (call {i + 1} of {n_calls})" if n_calls > 1 else ""
        g = got["returns"][i]
        w = want["returns"][i]
        if name in UNORDERED and isinstance(g, tuple) and len(g) == len(w):
            g = tuple(np.sort(np.asarray(part)) for part in g)
            w = tuple(np.sort(part) for part in w)
        labels = RETURNS[name]
        if isinstance(labels, tuple) and isinstance(w, tuple) and isinstance(g, tuple) and len(g) == len(w):
            for label, g_part, w_part in zip(labels, g, w):
                found = difference(g_part, w_part, label)
                if found:
                    return f"{name}: {found}{which}"
        else:
            found = difference(g, w, labels if isinstance(labels, str) else "the result")
            if found:
                return f"{name}: {found}{which}"
        for key in case["written"]:
            found = difference(got["written"][i][key], want["written"][i][key], key)
            if found:
                return f"{name}: after the call, {found}{which}"
    return None


def first_line_of(err):
    text = str(err).strip().splitlines()
    return text[0] if text else ""


def raised(err, name, path):
    """The line for an exception raised in the student's code: the function, the exception, and where."""
    where = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if path and os.path.abspath(frame.filename) == os.path.abspath(path):
            where = f" (line {frame.lineno}, in {frame.name})"
    return f"{name} raised {type(err).__name__}: {first_line_of(err)}{where}"


def grade_cases(module, row, cases, recordings, expected, path=None):
    """One exercise on one module: None if every case gives the reference's result, else the first line."""
    for case, recorded, want in zip(cases, recordings, expected):
        if is_blank(module, case["function"]):
            return f"{case['function']} is not written yet: {row['rule']}"
        try:
            with np.errstate(all="ignore"):
                got = run_case(module, case, recorded=recorded)
        except Mistake as err:
            return f"{err} ({case['label']})"
        except NotImplementedError:
            return f"{case['function']} is not written yet: {row['rule']}"
        except Exception as err:                      # the student's code raised: name it, never a traceback
            return f"{raised(err, case['function'], path)} ({case['label']})"
        found = result_difference(case, got, want)
        if found:
            return f"{found} ({case['label']})"
    return None


def is_blank(module, name):
    """True if a function's body is only its docstring and `raise NotImplementedError`, as a handout leaves it."""
    try:
        node = ast.parse(textwrap.dedent(inspect.getsource(getattr(module, name)))).body[0]
    except (OSError, TypeError, SyntaxError, AttributeError):
        return False
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])


# =============================================================================================================
# 6. The cases, drawn from the instructor's seed to reach every term, parameter and branch of each rule
# =============================================================================================================
def case(function, label, state, calls, written=()):
    """A case: the values (state), the calls of the graded function on them (each a list of state keys, and
    keyword: key), and the state keys that the function writes into, which are graded too."""
    return {"function": function, "label": label, "state": state, "written": list(written),
            "calls": [{"args": list(args), "kwargs": dict(kwargs)} for args, kwargs in calls]}


def distinct(rng, shape, low=0.05, high=1.0):
    """Values with both signs whose magnitudes lie in [low, high] and no two within 1e-3: no near-ties."""
    n = math.prod(shape)
    grid = np.linspace(low, high, max(n, 2) * 4)
    magnitudes = rng.choice(grid, size=n, replace=False)
    signs = rng.choice([-1.0, 1.0], size=n)
    return (magnitudes * signs).reshape(shape)


def mask(rng, shape, density=0.5):
    return (rng.random(shape) < density).astype(np.float64)


def cases_1(d, rng):
    out = []
    for label, x_shape, W_shape in [("one layer, n_in < n_out", (4, 3), (3, 5)), ("one layer, n_in > n_out", (4, 6), (6, 2)),
                                    ("twin critics, the input shared", (4, 3), (2, 3, 5)),
                                    ("twin critics, one output each", (2, 4, 5), (2, 5, 1))]:
        W = distinct(rng, W_shape)
        M = mask(rng, W_shape, 0.7) if W_shape[-1] > 1 else None
        if M is not None:
            W = W * M
        x = rng.standard_normal(x_shape)
        dy = rng.standard_normal(np.broadcast_shapes(x_shape[:-1], W_shape[:-2] + (1,)) + (W_shape[-1],))
        state = {"dy": dy, "cache": (x, W, M), "no": False}
        out.append(case("masked_linear_backward", label, state,
                        [(["dy", "cache"], {}), (["dy", "cache"], {"need_dx": "no"}),
                         (["dy", "cache"], {"need_dW": "no"})]))
    return out


def cases_2(d, rng):
    z = rng.standard_normal((5, 4))
    z[0, 0] = 0.0                                        # z = 0 exactly: no gradient passes (z > 0 is false)
    h = np.maximum(z, 0)
    y = np.tanh(rng.standard_normal((5, 4)) * 2)
    pred = rng.standard_normal((2, 6, 1))
    target = rng.standard_normal((6, 1))
    return [case("relu_backward", "a (5, 4) batch", {"dh": rng.standard_normal((5, 4)), "h": h}, [(["dh", "h"], {})]),
            case("tanh_backward", "a (5, 4) batch", {"dy": rng.standard_normal((5, 4)), "y": y}, [(["dy", "y"], {})]),
            case("mse_loss", "twin critics, B = 6", {"pred": pred, "target": target}, [(["pred", "target"], {})]),
            case("mse_loss", "one critic, B = 3", {"pred": pred[0, :3], "target": target[:3]},
                 [(["pred", "target"], {})])]


def cases_3(d, rng):
    out = []
    n = int(rng.integers(20, 300))
    for n_in, n_out, lam in [(11, 256, 7.0), (256, 11, 7.0), (256, 256, 64.0), (3, 64, 7.0), (64, 3, 7.0),
                             (n, int(rng.integers(5, 19)), float(rng.uniform(1, 5)))]:
        out.append(case("er_probability", f"n_in = {n_in}, n_out = {n_out}, λ = {lam:.3g}",
                        {"n_in": n_in, "n_out": n_out, "lam": lam}, [(["n_in", "n_out", "lam"], {})]))
    for n_in, n_out, p, dtype in [(5, 7, 0.3, np.float64), (7, 5, 0.65, np.float32), (4, 6, 1.0, np.float64)]:
        state = {"n_in": n_in, "n_out": n_out, "p": p, "rng": np.random.default_rng(rng.integers(1 << 32)),
                 "dtype": dtype}
        out.append(case("erdos_renyi_mask", f"a ({n_in}, {n_out}) mask, p = {p}, dtype {dtype.__name__}", state,
                        [(["n_in", "n_out", "p", "rng"], {"dtype": "dtype"})], written=["rng"]))
    state = {"n_in": 6, "n_out": 3, "p": 0.5, "rng": np.random.default_rng(rng.integers(1 << 32))}
    out.append(case("erdos_renyi_mask", "a (6, 3) mask in the default dtype", state,
                    [(["n_in", "n_out", "p", "rng"], {})], written=["rng"]))
    return out


def sparse_layer(rng, shape, density, exact_zero=True):
    M = mask(rng, shape, density)
    W = distinct(rng, shape) * M
    if exact_zero:
        W.reshape(-1)[np.flatnonzero(M)[0]] = 0.0        # a present connection whose weight is exactly 0
    return W, M


def cases_4(d, rng):
    out = []
    for label, shape, eta, grow, gradient in [("(6, 10), random growth, two calls", (6, 10), 0.1, True, False),
                                              ("(10, 6), random growth, two calls", (10, 6), 0.3, True, False),
                                              ("(8, 8), drop only (grow=False), two calls", (8, 8), 0.2, False, False),
                                              ("(5, 9), gradient growth, two calls", (5, 9), 0.25, True, True)]:
        W, M = sparse_layer(rng, shape, 0.5)
        state = {"W": W, "M": M, "eta": eta, "rng": np.random.default_rng(rng.integers(1 << 32)), "grow": grow,
                 "dW_dense": distinct(rng, shape) if gradient else None}
        call = (["W", "M", "eta", "rng"], {"grow": "grow", "dW_dense": "dW_dense"})
        out.append(case("drop_and_grow", label, state, [call, call], written=["W", "M", "rng"]))
    W, M = sparse_layer(rng, (3, 4), 1.0)                 # no free position: nothing can be dropped
    state = {"W": W, "M": M, "eta": 0.3, "rng": np.random.default_rng(rng.integers(1 << 32))}
    out.append(case("drop_and_grow", "(3, 4) full: no position to grow", state, [(["W", "M", "eta", "rng"], {})],
                    written=["W", "M", "rng"]))
    W, M = sparse_layer(rng, (4, 5), 1.0)                 # two free positions: the counts are capped by them
    M.reshape(-1)[[3, 11]] = 0
    W *= M
    state = {"W": W, "M": M, "eta": 0.4, "rng": np.random.default_rng(rng.integers(1 << 32))}
    out.append(case("drop_and_grow", "(4, 5) nearly full, η = 0.4", state, [(["W", "M", "eta", "rng"], {})],
                    written=["W", "M", "rng"]))
    return out


def cases_5(d, rng):
    out = []
    for label, shape, density, k in [("(8, 12), k below the nonzeros", (8, 12), 0.6, 30),
                                     ("(12, 8), k below the nonzeros", (12, 8), 0.8, 50),
                                     ("(6, 6), k above the nonzeros", (6, 6), 0.3, 30),
                                     ("(5, 4), one nonzero too many", (5, 4), 1.0, 19)]:
        W, _ = sparse_layer(rng, shape, density, exact_zero=False)
        out.append(case("maintain_sparsity", label, {"W_targ": W, "k": k},
                        [(["W_targ", "k"], {}), (["W_targ", "k"], {})], written=["W_targ"]))
    return out


def random_net(d, rng, sizes=((3, 5), (5, 5), (5, 2)), n_stack=None, dtype=np.float64, sparse=True):
    densities = [0.6, 0.6] if sparse else None
    net = d.init_mlp(list(sizes), densities, rng, n_stack=n_stack, dtype=dtype)
    for key in d.TRAINABLE:                              # nonzero biases, and weights that are not the init's
        if key.startswith("b"):
            net[key][...] = rng.standard_normal(net[key].shape)
    return net


def random_grads(d, net, rng):
    grads = {}
    for key in d.TRAINABLE:
        grads[key] = rng.standard_normal(net[key].shape).astype(net[key].dtype)
        layer = key[1:]
        if key.startswith("W") and f"M{layer}" in net:
            grads[key] *= net[f"M{layer}"]
    return grads


def cases_6(d, rng):
    out = []
    for label, dtype, t in [("float64, from t = 0, two steps", np.float64, 0), ("float64, from t = 7", np.float64, 7),
                            ("float32, from t = 0, two steps", np.float32, 0)]:
        net = random_net(d, rng, dtype=dtype)
        opt = d.adam_init(net)
        opt["t"] = t
        if t:
            opt["m_flat"][...] = rng.standard_normal(opt["m_flat"].shape) * 0.1
            opt["v_flat"][...] = rng.random(opt["v_flat"].shape) * 0.01
        state = {"net": net, "opt": opt, "grads1": random_grads(d, net, rng), "grads2": random_grads(d, net, rng),
                 "lr": 0.01, "wd": 0.05}
        out.append(case("adam_step", label, state, [(["net", "grads1", "opt", "lr", "wd"], {}),
                                                    (["net", "grads2", "opt", "lr", "wd"], {})],
                        written=["opt", "net"]))
    return out


def small_agent_parts(d, rng, S=3, A=2, H=6):
    lo = np.array([-1.0, -0.5])[:A]
    hi = np.array([1.0, 2.0])[:A]
    actor = random_net(d, rng, ((S, H), (H, H), (H, A)))
    actor["W3"] *= 4                                     # a saturating tanh: actions near the bounds, to be clipped
    actor["act_scale"] = (hi - lo) / 2
    actor["act_bias"] = (hi + lo) / 2
    critic = random_net(d, rng, ((S + A, H), (H, H), (H, 1)), n_stack=2)
    return actor, critic, lo, hi


def batch_of(rng, B, S=3, A=2):
    return {"obs": rng.standard_normal((B, S)), "act": rng.uniform(-1, 1, (B, A)), "rew": rng.standard_normal((B, 1)),
            "next_obs": rng.standard_normal((B, S)), "terminated": (rng.random((B, 1)) < 0.3).astype(np.float64)}


def cases_7(d, rng):
    actor, critic, lo, hi = small_agent_parts(d, rng)
    scale = (hi - lo) / 2
    state = {"actor_targ": d.copy_net(actor), "critic_targ": d.copy_net(critic), "batch": batch_of(rng, 16),
             "gamma": 0.9, "sigma": 0.5 * scale, "c": 0.4 * scale, "lo": lo, "hi": hi,
             "rng": np.random.default_rng(rng.integers(1 << 32))}
    state["batch"]["terminated"][:2] = [[0.0], [1.0]]
    call = (["actor_targ", "critic_targ", "batch", "gamma", "sigma", "c", "lo", "hi", "rng"], {})
    return [case("td3_target", "B = 16, A = 2, σ̃ and c both active, some ã at the bounds", state, [call, call],
                 written=["rng"])]


def cases_8(d, rng):
    actor, critic, _, _ = small_agent_parts(d, rng)
    state = {"actor": actor, "critic": critic, "obs": rng.standard_normal((5, 3))}
    return [case("actor_loss_grads", "B = 5, twin critics", state, [(["actor", "critic", "obs"], {})])]


def cases_9(d, rng):
    out = []
    for label, sparse in [("sparse nets", True), ("dense nets", False)]:
        net = random_net(d, rng, sparse=sparse)
        targ = d.copy_net(random_net(d, rng, sparse=sparse))
        state = {"net": net, "net_targ": targ, "tau": 0.3}
        out.append(case("soft_update", f"{label}, two updates", state,
                        [(["net", "net_targ", "tau"], {}), (["net", "net_targ", "tau"], {})], written=["net_targ"]))
    return out


def cases_10(d, rng):
    out = []
    for label, n_stack, grow, gradient in [("the actor", None, True, False), ("twin critics", 2, True, False),
                                           ("twin critics, drop only", 2, False, False),
                                           ("the actor, gradient growth", None, True, True)]:
        sizes = ((3, 8), (8, 8), (8, 2)) if n_stack is None else ((5, 8), (8, 8), (8, 1))
        net = random_net(d, rng, sizes, n_stack=n_stack)
        opt = d.adam_init(net)
        opt["m_flat"][...] = rng.standard_normal(opt["m_flat"].shape)
        opt["v_flat"][...] = rng.random(opt["v_flat"].shape)
        state = {"net": net, "opt": opt, "eta": 0.2, "rng": np.random.default_rng(rng.integers(1 << 32)),
                 "grow": grow, "dense_grads": random_grads(d, d.without_masks(net), rng) if gradient else None}
        out.append(case("topology_update", label, state,
                        [(["net", "opt", "eta", "rng"], {"grow": "grow", "dense_grads": "dense_grads"})],
                        written=["net", "opt", "rng"]))
    return out


def small_hp(d, **changes):
    argv = ["--env", "Course-v0", "--batch-size", "4", "--hidden", "6", "--policy-delay", "2", "--update-period", "4",
            "--total-steps", "1000", "--learning-starts", "10", "--sparsity", "0.5"]
    hp = d.hyperparameters(d.make_parser().parse_args(argv))
    hp.update(changes)
    return hp


def small_agent(d, rng, hp, S=3, A=2):
    agent = d.build_agent(S, A, CourseEnv.low, CourseEnv.high, hp, rng, dtype=np.float64)
    for name in ("actor_targ", "critic_targ"):          # targets that differ from the online networks
        agent[name]["flat"][...] += rng.standard_normal(agent[name]["flat"].shape) * 0.05
    return agent


def cases_11(d, rng):
    out = []
    for label, iterations, changes in [("iterations 1 to 4: the actor every 2nd, a topology update at 4", [1, 2, 3, 4], {}),
                                       ("iteration 8, gradient growth, η on a cosine", [8],
                                        {"grow": "gradient", "drop_schedule": "cosine"}),
                                       ("iterations 980 and 984: the last regrowing update, then drop only",
                                        [980, 984], {"stop_adapt": 0.99}),
                                       ("iterations 99 and 100, static-td3: a flush at 100", [99, 100],
                                        {"algo": "static-td3"})]:
        hp = small_hp(d, **changes)
        buf = d.buffer_init(20, 3, 2, dtype=np.float64)
        for _ in range(20):
            d.buffer_add(buf, rng.standard_normal(3), rng.uniform(-1, 1, 2), float(rng.standard_normal()),
                         rng.standard_normal(3), float(rng.random() < 0.2))
        state = {"agent": small_agent(d, rng, hp), "buf": buf, "hp": hp,
                 "rng": np.random.default_rng(rng.integers(1 << 32))}
        critic = state["agent"]["critic"]
        absent = np.flatnonzero(critic["M1"].reshape(-1) == 0)
        state["agent"]["opt_critic"]["m_flat"][absent] = 1e-310   # subnormal moments: a flush has work to do
        calls = []
        for i in iterations:
            state[f"i{i}"] = i
            calls.append((["agent", "buf", f"i{i}", "hp", "rng"], {}))
        out.append(case("train_iteration", label, state, calls, written=["agent", "buf", "rng"]))
    return out


def cases_12(d, rng):
    out = []
    for label, step, size in [("a fresh run of 14 steps: warm-up to 4, evaluations at 5, 10 and 14", 0, 0),
                              ("resumed after step 6 without its buffer: training waits for a batch", 6, 1)]:
        hp = small_hp(d, total_steps=14, learning_starts=4, batch_size=3, eval_every=5, eval_episodes=2, seed=3)
        env = CourseEnv()
        obs, _ = env.reset(seed=int(rng.integers(100)))
        buf = d.buffer_init(30, 3, 2, dtype=np.float64)
        for _ in range(size):
            d.buffer_add(buf, obs, np.zeros(2), 0.0, obs, 0.0)
        state = {"agent": small_agent(d, rng, hp), "env": env, "eval_env": CourseEnv(max_steps=4), "buf": buf,
                 "hp": hp, "rng": np.random.default_rng(rng.integers(1 << 32)), "loop": {"step": step, "obs": obs}}
        out.append(case("train", label, state, [(["agent", "env", "eval_env", "buf", "hp", "rng", "loop"], {})],
                        written=["agent", "env", "eval_env", "buf", "rng", "loop"]))
    return out


CASE_MAKERS = {1: cases_1, 2: cases_2, 3: cases_3, 4: cases_4, 5: cases_5, 6: cases_6, 7: cases_7, 8: cases_8,
         9: cases_9, 10: cases_10, 11: cases_11, 12: cases_12}


@functools.lru_cache(maxsize=None)
def record(reference, number, seed):
    """Draw an exercise's cases from seed and run the reference on them: (cases, recordings, expected)."""
    source = inspect.getsource(reference)
    functions = {name for name, value in vars(reference).items() if inspect.isfunction(value)}
    cases = CASE_MAKERS[number](reference, np.random.default_rng([seed, number]))
    recordings = []
    expected = []
    for one in cases:
        one["callees"] = callees(source, [one["function"]], functions)
        one["signatures"] = {name: list(signature_of(getattr(reference, name))) for name in one["callees"]}
        calls = []
        expected.append(run_case(reference, one, calls=calls))
        recordings.append(calls)
    return cases, recordings, expected


def recorded_data(reference, seed):
    """Every exercise's cases, recordings and results, as a handout carries them in course/cases.npz."""
    data = {"seed": seed, "exercises": {}}
    for row in EXERCISES:
        cases, recordings, expected = record(reference, row["number"], seed)
        data["exercises"][str(row["number"])] = {"cases": cases, "recordings": recordings, "expected": expected}
    return data


# =============================================================================================================
# 7. Grading a file: each exercise alone, in a process of its own; and the final task
# =============================================================================================================
def load_module(path, name="dst_td3_graded"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_module():
    sys.path.insert(0, PROJECT)
    import dst_td3
    return dst_td3


@functools.lru_cache(maxsize=None)
def handout_cases():
    """course/cases.npz, read once per process (the student's pytest grades all 12 exercises in one). Nothing
    writes into it: run_case grades on copies, and the stubs write copies of what it holds."""
    return load_data(CASES_FILE)


def exercise_data(number, seed, data=None):
    """The cases of one exercise, with the reference's recordings and results: live on the instructor's side,
    from course/cases.npz in a handout (or from `data`, what load_data read from one)."""
    if data is None and os.path.exists(CASES_FILE):
        data = handout_cases()
    if data is not None:
        if seed != data["seed"]:
            raise CourseError(f"--seed {seed}: this folder's cases are recorded at seed {data['seed']}; other seeds "
                              "are the instructor's")
        return data["exercises"][str(number)]
    cases, recordings, expected = record(reference_module(), number, seed)
    return {"cases": cases, "recordings": recordings, "expected": expected}


def grade_here(module, number, seed=HANDOUT_SEED, path=None, data=None):
    """One exercise on a loaded module, in this process: None if it earns its points, else the line why."""
    data = exercise_data(number, seed, data)
    return grade_cases(module, EXERCISES[number - 1], data["cases"], data["recordings"], data["expected"], path)


def grade_exercise(path, number, seed):
    """One exercise in a process of its own, which a student's code cannot harm. Returns (points, output)."""
    row = EXERCISES[number - 1]
    argv = [sys.executable, os.path.abspath(__file__), "one", os.path.abspath(path), str(number), str(seed)]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=EXERCISE_TIMEOUT,
                                    env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"},
                                    encoding="utf-8", errors="replace")
        except subprocess.TimeoutExpired:
            return 0, f"exercise {number} took longer than {EXERCISE_TIMEOUT} s: an endless loop?"
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = result.stderr.strip().splitlines() or ["no output"]
        return 0, f"the grader stopped: {tail[-1]}"
    if lines[-1] == "passed":
        return row["points"], "passed"
    return 0, lines[-1]


def grade_one(path, number, seed):
    """The `one` command: load the student's file, grade one exercise, print one line."""
    try:
        with open(os.devnull, "w") as quiet:             # what the student's module prints is not the grade
            stdout = sys.stdout
            sys.stdout = quiet
            try:
                module = load_module(path)
            finally:
                sys.stdout = stdout
    except Exception as err:
        print(f"the file does not import: {raised(err, 'it', path).removeprefix('it raised ')}")
        return 0
    except SystemExit:
        print("the file does not import: it calls sys.exit when imported")
        return 0
    failure = grade_here(module, number, seed, path)
    print(failure or "passed")
    return 0


def final_run(path, seed):
    """One seed of the final task on the student's whole file. Returns (passed, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, os.path.abspath(path), *FINAL_TASK["argv"], "--seed", str(seed), "--runs-dir", tmp]
        try:
            result = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return False, f"seed {seed}: the run took longer than 600 s"
    evaluations = []
    for line in result.stdout.splitlines():
        if line.startswith("eval step="):
            fields = dict(item.split("=", 1) for item in line.split()[1:])
            evaluations.append((int(fields["step"]), float(fields["return_mean"])))
    if result.returncode != 0 or not evaluations:
        lines = result.stderr.strip().splitlines() or ["no evaluation lines"]
        return False, f"seed {seed}: the run failed: {lines[-1]}"
    threshold = FINAL_TASK["threshold"]
    for step, value in evaluations:
        if value >= threshold:
            return True, f"seed {seed}: reached {value:.0f} at step {step:,}"
    best = max(value for _, value in evaluations)
    return False, f"seed {seed}: best evaluation {best:.0f} in {evaluations[-1][0]:,} steps, below {threshold:.0f}"


def grade(path, numbers, seed, final, json_path):
    """Grade the chosen exercises of a student's file, each alone, and with final=True the final task. Prints a
    line per exercise and the total; writes Gradescope's results.json to json_path if given."""
    if os.path.isdir(path):
        raise CourseError(f"{path} is a folder: give the student's dst_td3.py")
    if not os.path.isfile(path):
        raise CourseError(f"{path}: no such file")
    if final and os.path.exists(CASES_FILE):
        raise CourseError("--final: the final task is graded on the instructor's side")
    if seed != HANDOUT_SEED and os.path.exists(CASES_FILE):
        raise CourseError(f"--seed {seed}: other cases than the handout's are the instructor's")
    rows = [EXERCISES[number - 1] for number in numbers]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda row: grade_exercise(path, row["number"], seed), rows))
        runs = []
        if final:
            runs = list(pool.map(lambda run_seed: final_run(path, run_seed), FINAL_TASK["seeds"]))
    tests = []
    for row, (points, output) in zip(rows, results):
        name = f"exercise {row['number']}: {', '.join(row['functions'])}"
        tests.append({"name": name, "score": points, "max_score": row["points"], "output": output})
    if final:
        points = FINAL_TASK["points_per_seed"] * sum(passed for passed, _ in runs)
        tests.append({"name": "final task: Pendulum-v1 at 50 % sparsity", "score": points,
                      "max_score": FINAL_TASK["points_per_seed"] * len(runs),
                      "output": "; ".join(output for _, output in runs)})
    report = results_json(tests)
    for test in tests:
        print(f"{test['name']:<58} {test['score']:>3}/{test['max_score']:<3} {test['output']}", flush=True)
    print(f"{'total':<58} {report['score']:>3}/{sum(test['max_score'] for test in tests):<3}", flush=True)
    if json_path:
        write_text(json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report["score"], sum(test["max_score"] for test in tests)


def results_json(tests):
    """Gradescope's results.json: the total and a test per exercise."""
    return {"score": sum(test["score"] for test in tests), "tests": tests}


# =============================================================================================================
# 8. The student's folder, and Gradescope's
# =============================================================================================================
def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write_text(path, text):
    """Write a file of the kit's; a failing write (a full disk: /dev/full) names the file, not stdout."""
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except OSError as err:
        raise OSError(err.errno, err.strerror, path) from None


def function_spans(source):
    """{name: (first, last, head)} for every top-level function of a source text: its first and last lines, and
    the last line of its signature and docstring, after which its body begins (1-based line numbers)."""
    spans = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            head = node.body[0].end_lineno if ast.get_docstring(node) is not None else node.body[0].lineno - 1
            spans[node.name] = (first, node.end_lineno, head)
    return spans


def blank_bodies(source, names):
    """The source with the bodies of the named functions replaced by `raise NotImplementedError`; the signature,
    the docstring and every other line stay as they were."""
    lines = source.split("\n")
    spans = function_spans(source)
    for name in sorted(names, key=lambda name: -spans[name][0]):       # bottom up: line numbers stay valid
        first, last, head = spans[name]
        body = lines[head]
        indent = body[:len(body) - len(body.lstrip())]
        lines[head:last] = [indent + "raise NotImplementedError"]
    return "\n".join(lines)


def without_functions(source, names):
    """The source without the named top-level functions (and their decorators)."""
    lines = source.split("\n")
    spans = function_spans(source)
    for name in sorted(names, key=lambda name: -spans[name][0]):
        first, last, _ = spans[name]
        end = last
        while end < len(lines) and not lines[end].strip():
            end += 1
        lines[first - 1:end] = []
    return "\n".join(lines)


# The program's tests that compute an exercise's answer: the instructor's, left out of a handout. The students'
# file gets a test per exercise in their place, which grades it as `grade` does (STUDENT_TESTS).
ANSWER_TESTS = [
    "test_masked_linear_gradients", "test_relu_tanh_mse_gradients", "test_er_realised_density_matches_eq1",
    "paper_expected_weights", "test_paper_sparsity_levels", "test_paper_sparsity_ant_and_humanoid",
    "assert_drop_and_grow", "test_drop_and_grow_invariants", "test_drop_and_grow_tiny_and_full_layers",
    "test_maintain_sparsity_keeps_k_largest", "dirty_target", "test_critic_dq_da_and_actor_loss_through_the_critic",
    "test_adam_matches_the_textbook_formula", "test_adam_keeps_float32_precision", "test_td3_target_math",
    "test_td3_target_noise_is_clipped_and_action_bounded", "test_actor_loss_grads_is_the_deterministic_policy_gradient",
    "test_soft_update_is_exact_polyak", "test_topology_update_zeroes_adam_moments_and_keeps_counts",
    "test_drop_only_update_keeps_eta_fewer_connections_and_maintain_sparsity_follows",
    "test_actor_updates_every_d_iterations_and_targets_follow",
]
STUDENT_TESTS = '''

# =============================================================================================================
# The exercises (this folder's course/course.py grades each as `python course/course.py grade` does)
# =============================================================================================================
sys.path.insert(0, os.path.join(HERE, "course"))
import course  # noqa: E402


@pytest.fixture(autouse=True)
def the_method_waits_for_the_exercises(request):
    """While an exercise is blank, only the exercises' own tests run: every other test needs the whole method."""
    blank = [row for row in course.EXERCISES if any(course.is_blank(d, name) for name in row["functions"])]
    if blank and request.function.__name__ != "test_exercise":
        pytest.skip(f"waits for exercise {blank[0]['number']} ({', '.join(blank[0]['functions'])}), not written yet")


@pytest.mark.parametrize("number", [row["number"] for row in course.EXERCISES])
def test_exercise(number):
    failure = course.grade_here(d, number, path=d.__file__)
    if failure:
        pytest.fail(f"exercise {number}: {failure}", pytrace=False)
'''


def teaching_table(rows):
    """The exercises as the README and the sheet show them."""
    lines = ["| # | write | the rule | minutes | points |", "|---|---|---|---|---|"]
    for row in rows:
        names = ", ".join(f"`{name}`" for name in row["functions"])
        lines.append(f"| {row['number']} | {names} | {row['rule']} | {row['minutes']} | {row['points']} |")
    return "\n".join(lines)


def student_sheet(rows):
    """DIR/README.md: the chosen exercises, how to grade them, and the final task."""
    total = sum(row["points"] for row in rows)
    minutes = sum(row["minutes"] for row in rows)
    final_points = FINAL_TASK["points_per_seed"] * len(FINAL_TASK["seeds"])
    command = "python dst_td3.py " + " ".join(FINAL_TASK["argv"]) + " --seed S"
    return f"""# DS-TD3 in numpy: the assignment

`dst_td3.py` is the whole of DS-TD3 (Sokar et al., IJCAI 2022): read it top to bottom. The bodies of the
functions below are `raise NotImplementedError`: write each one back from its docstring, the rule and the
paper. Set up with `pip install -r requirements.txt`.

{teaching_table(rows)}

{total} points, about {minutes // 60} h {minutes % 60:02d} min. Work in the table's order, which is the file's.
After each exercise:

```bash
python course/course.py grade --exercises N   # one exercise: its points, or the line that says what differs
python course/course.py grade                 # every exercise, and the total
python -m pytest -q                           # the same grades, and the program's own tests once all are written
```

How you are graded: each function runs on recorded cases (`course/cases.npz`) that reach every term and branch
of its rule, and what it returns and writes is compared with the reference's, in float64 within a tolerance;
where it draws random numbers, its docstring names the `rng` call and the order, and the draws must be those.
The functions it calls are replaced by stand-ins that replay the reference's calls, so an exercise is graded
alone: a mistake elsewhere costs it nothing, and a wrong argument to a call is named. Your instructor grades
the same file with the same cases, and the same points, and may draw more cases (`--seed`).

## The final task ({final_points} points, graded by your instructor)

Your whole file trains DS-TD3 on Pendulum-v1 at 50 % sparsity, on seeds {', '.join(map(str, FINAL_TASK['seeds']))}:

```bash
{command}
```

A seed passes ({FINAL_TASK['points_per_seed']} points) when one of its evaluation lines (`eval step=… return_mean=…`)
reaches {FINAL_TASK['threshold']:.0f} within the run's 15,000 steps. The first evaluation is below -1,100 (the
pendulum hangs); a swung-up pendulum earns about -150. The reference, on seeds 0-9 and three OpenBLAS kernels
(Haswell, SkylakeX, Sandybridge), first passes -300 between steps 6,000 and 10,000, and its best evaluation lies
between -219.35 and -49.09 (the project's results/pendulum_kernels.csv). The final task checks that the file
learns; it cannot check the rules: with Pendulum's 3 inputs both Erdős–Rényi probabilities exceed 1 and are
capped, so at `--sparsity 0.5` the masks are uniform, and many wrong files still learn. Only the exercises'
grades check the rules.
"""


def handout(folder, numbers):
    """Write a student's folder: dst_td3.py with the chosen exercises blank, the program's tests without those
    that compute an answer, requirements.txt, LICENSE, README.md (the student's sheet), and course/ with this
    grader and the cases recorded from the reference as data."""
    rows = [EXERCISES[number - 1] for number in numbers]
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CourseError(f"{folder} is a file: give a new or empty folder")
    if os.path.exists(folder) and os.listdir(folder):
        raise CourseError(f"{folder} is not empty: give a new or empty folder, so that nothing is overwritten")
    data = recorded_data(reference_module(), HANDOUT_SEED)
    os.makedirs(os.path.join(folder, "course"), exist_ok=True)
    names = [name for row in rows for name in row["functions"]]
    write_text(os.path.join(folder, "dst_td3.py"), blank_bodies(read_text(os.path.join(PROJECT, "dst_td3.py")), names))
    tests = without_functions(read_text(os.path.join(PROJECT, "test_dst_td3.py")), ANSWER_TESTS)
    write_text(os.path.join(folder, "test_dst_td3.py"), tests + STUDENT_TESTS)
    for name in ("requirements.txt", "LICENSE"):
        shutil.copyfile(os.path.join(PROJECT, name), os.path.join(folder, name))
    shutil.copyfile(os.path.abspath(__file__), os.path.join(folder, "course", "course.py"))
    save_data(os.path.join(folder, "course", "cases.npz"), data)
    write_text(os.path.join(folder, "README.md"), student_sheet(rows))
    print(f"handout: {folder} holds exercises {', '.join(map(str, numbers))} ({sum(row['points'] for row in rows)} "
          f"points)")


RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this: grade the submitted dst_td3.py, and write results.json (also when it does not import)
cd /autograder/source
python3 course/course.py grade /autograder/submission/dst_td3.py --json /autograder/results/results.json || true
if [ ! -s /autograder/results/results.json ]; then
    python3 course/course.py missing /autograder/results/results.json
fi
"""
SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, to build the image: the packages of requirements.txt
apt-get install -y python3 python3-pip
pip3 install -r /autograder/source/requirements.txt
"""


def autograder(folder):
    """Write Gradescope's autograder: setup.sh, run_autograder, and the handout's files, which it grades with."""
    handout(folder, [row["number"] for row in EXERCISES])
    for name, text in (("setup.sh", SETUP), ("run_autograder", RUN_AUTOGRADER)):
        write_text(os.path.join(folder, name), text)
        os.chmod(os.path.join(folder, name), 0o755)
    print(f"autograder: zip the contents of {folder} and upload them as Gradescope's autograder")


def missing(json_path):
    """results.json when no grade could be made: no submission, or a grader that stopped."""
    tests = [{"name": f"exercise {row['number']}: {', '.join(row['functions'])}", "score": 0,
              "max_score": row["points"], "output": "no dst_td3.py was graded: was it submitted under that name?"}
             for row in EXERCISES]
    write_text(json_path, json.dumps(results_json(tests), indent=2, ensure_ascii=False) + "\n")


# =============================================================================================================
# 9. The command line. CHOICE: its own error boundary, not dst_td3.main's: in a student's folder dst_td3.py is
#    the student's, which may not import.
# =============================================================================================================
def exercise_numbers(text):
    """--exercises 1,4,7 -> [1, 4, 7]; an unknown number is a one-line error."""
    numbers = []
    for part in text.split(","):
        if not part.strip().isdigit() or not 1 <= int(part) <= len(EXERCISES):
            raise argparse.ArgumentTypeError(f"{part!r} is not an exercise number (1 to {len(EXERCISES)})")
        numbers.append(int(part))
    return sorted(set(numbers))


def seed_number(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed (0, 1, 2, ...)")
    return int(text)


def make_parser():
    parser = argparse.ArgumentParser(prog="course.py", description="The course kit: a student's folder, grades, and "
                                     "Gradescope's autograder (README, Teaching with dst_td3.py).")
    commands = parser.add_subparsers(dest="command", required=True)
    every = ",".join(str(row["number"]) for row in EXERCISES)
    writer = commands.add_parser("handout", help="write a student's folder: dst_td3.py with the exercises blank, "
                                 "its tests, the grader and its recorded cases, and README.md, the student's sheet")
    writer.add_argument("folder", metavar="DIR", help="a new or empty folder")
    writer.add_argument("--exercises", type=exercise_numbers, default=every, metavar="1,4,7",
                        help="the exercises to leave blank (default: all)")
    grader = commands.add_parser("grade", help="grade a student's dst_td3.py, each exercise alone (a few seconds)")
    grader.add_argument("file", nargs="?", default=os.path.join(PROJECT, "dst_td3.py"), metavar="FILE",
                        help="the student's dst_td3.py (default: the one beside course/)")
    grader.add_argument("--exercises", type=exercise_numbers, default=every, metavar="1,4,7",
                        help="the exercises to grade (default: all)")
    grader.add_argument("--seed", type=seed_number, default=HANDOUT_SEED, metavar="N",
                        help="draw the graded cases from seed N (instructor only; 0: the handout's cases)")
    grader.add_argument("--final", action="store_true",
                        help="also grade the final task, three Pendulum runs (instructor only; under a minute)")
    grader.add_argument("--json", metavar="FILE", help="also write the result as Gradescope's results.json")
    maker = commands.add_parser("autograder", help="write Gradescope's autograder: setup.sh, run_autograder and "
                                "the files they use")
    maker.add_argument("folder", metavar="DIR", help="a new or empty folder")
    one = commands.add_parser("one")                     # internal: one exercise, in a process of its own
    one.add_argument("file")
    one.add_argument("number", type=int)
    one.add_argument("seed", type=int)
    empty = commands.add_parser("missing")               # internal: results.json when nothing could be graded
    empty.add_argument("json")
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        if args.command == "handout":
            handout(args.folder, args.exercises)
            return 0
        if args.command == "autograder":
            autograder(args.folder)
            return 0
        if args.command == "one":
            return grade_one(args.file, args.number, args.seed)
        if args.command == "missing":
            missing(args.json)
            return 0
        score, max_score = grade(args.file, args.exercises, args.seed, args.final, args.json)
    except CourseError as err:
        print(f"course.py: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"course.py: error: {err.filename or 'stdout'}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("course.py: interrupted", file=sys.stderr)
        return 130
    return 0 if score == max_score else 1


if __name__ == "__main__":
    sys.exit(main())
