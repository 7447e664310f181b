"""The course kit's own tests: every planted mistake and every mutant of an exercise body is graded, from the
instructor's folder and from a handout, and costs its own exercise only. Run: python -m pytest -q (from the root)."""
import ast
import copy
import functools
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, PROJECT)
import course  # noqa: E402
import dst_td3  # noqa: E402

REFERENCE = course.read_text(os.path.join(PROJECT, "dst_td3.py"))

# The planted mistakes: typical student mistakes, each an edit of the reference dst_td3.py (old text, new text),
# the exercise whose grade must catch it, and the term its one line must name. A regression list: what measures
# the kit is the mutation test below, and mistakes nobody listed.
PLANTED = [
    (1, '            dW *= M', '            dW *= 1', 'dW'),
    (1, 'db = dy.sum(axis=-2, keepdims=True)', 'db = dy.mean(axis=-2, keepdims=True)', 'db'),
    (1, '        db = dy.sum(axis=-2, keepdims=True)', '        db = dy.sum(axis=-1, keepdims=True)', 'db'),
    (1, '    if need_dW:\n        dW = x.swapaxes', '    if True:\n        dW = x.swapaxes', 'dW'),
    (1, '    elif need_dx:\n', '    else:\n', 'dx'),
    (1, '    if need_dx and W.shape[-1] == 1:', '    if W.shape[-1] == 1:', 'dx'),
    (2, 'return dh * (h > 0)', 'return dh * (h >= 0)', 'dz'),
    (2, 'return dy * (1 - y * y)', 'return dy * (1 - np.tanh(y) ** 2)', 'dz'),
    (2, 'dpred = diff * (2.0 / n_batch)', 'dpred = diff * (1.0 / n_batch)', 'dpred'),
    (2, 'dpred = diff * (2.0 / n_batch)', 'dpred = diff * 2.0', 'dpred'),
    (2, 'return dh * (h > 0)', 'return dh * h', 'dz'),
    (2, 'return dy * (1 - y * y)', 'return dy * (1 - y)', 'dz'),
    (2, 'loss = float((diff * diff).sum()) / n_batch', 'loss = float((diff * diff).mean())', 'L'),
    (2, 'n_batch = pred.shape[-2]', 'n_batch = pred.shape[0]', 'L'),
    (2, 'diff = pred - target  ', 'diff = target - pred  ', 'dpred'),
    (3, 'return min(1.0, lam * (n_in + n_out) / (n_in * n_out))',
     'return lam * (n_in + n_out) / (n_in * n_out)', 'p is'),
    (3, 'return (rng.random((n_in, n_out)) < p)', 'return (np.random.random((n_in, n_out)) < p)', 'rng is never drawn'),
    (3, 'return (rng.random((n_in, n_out)) < p)', 'return (rng.random((n_in, n_out)) > p)', 'mask M'),
    (3, 'return min(1.0, lam * (n_in + n_out) / (n_in * n_out))',
     'return min(1.0, lam * (n_in + n_out) / n_in * n_out)', 'p is'),
    (3, 'return min(1.0, lam * (n_in + n_out) / (n_in * n_out))',
     'return min(1.0, lam * (n_in + n_out) / (n_in * n_in))', 'p is'),
    (3, 'return (rng.random((n_in, n_out)) < p).astype(dtype)', 'return rng.random((n_in, n_out)) < p', 'dtype bool'),
    (3, 'return (rng.random((n_in, n_out)) < p).astype(dtype)',
     'return (rng.random((n_out, n_in)).T < p).astype(dtype)', 'mask M'),
    (4, 'grown = rng.choice(free, size=dropped.size',
     'grown = rng.choice(np.flatnonzero(mask == 0), size=dropped.size', 'grown'),
    (4, 'mask[dropped], w[dropped] = 0, 0', 'mask[dropped] = 0', 'W is'),
    (4, 'k_pos = min(math.ceil(eta * pos.size), room)', 'k_pos = min(int(eta * pos.size), room)', 'dropped'),
    (4, 'drop_pos = pos[np.argpartition(w[pos]', 'drop_pos = pos[np.argpartition(-w[pos]', 'dropped'),
    (4, 'k_neg = min(math.ceil(eta * neg.size), room - k_pos)',
     'k_neg = min(math.ceil(eta * pos.size), room - k_pos)', 'dropped'),
    (4, 'rng.choice(free, size=dropped.size, replace=False)',
     'rng.choice(free, size=dropped.size, replace=True)', 'grown'),
    (4, '        grown = dropped[:0]', '        grown = dropped', 'grown'),
    (4, 'grown = grow_by_gradient(free, dropped.size, dW_dense)',
     'grown = grow_by_gradient(np.flatnonzero(mask == 0), dropped.size, dW_dense)', 'grow_by_gradient gets another free'),
    (5, 'n_extra = int(np.count_nonzero(w)) - k', 'n_extra = w.size - k', 'n_extra'),
    (5, 'w[smallest], w[ties] = 0, 0', 'w[smallest] = 0', 'W_targ'),
    (5, 'key = np.abs(w).view(f"u{w.itemsize}") - 1', 'key = w.view(f"u{w.itemsize}") - 1', 'W_targ'),
    (5, '    if n_extra <= 0:                                     # already',
     '    if n_extra < 0:                                     # already', 'W_targ'),
    (6, 'lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)', 'lr_t = lr', "net['W1']"),
    (6, 'np.multiply(W, weight_decay, out=g)', 'np.multiply(W, 0.0, out=g)', 'm_W1'),
    (6, 'm += np.multiply(g, 1 - beta1, out=tmp)', 'm += g', 'm_W1'),
    (6, 'np.multiply(g, g, out=tmp)', 'np.abs(g, out=tmp)', 'v_W1'),
    (6, '    opt["t"] += 1\n', '    opt["t"] = 1\n', "opt['t']"),
    (6, '    m *= beta1\n', '    m *= beta2\n', 'm_W1'),
    (6, 'lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)',
     'lr_t = lr * (1 - beta2 ** t) / (1 - beta1 ** t)', "net['W1']"),
    (7, 'xi = np.clip(rng.standard_normal((next_obs.shape[0], sigma.size), dtype=next_obs.dtype) * sigma, -c, c)',
     'xi = rng.standard_normal((next_obs.shape[0], sigma.size), dtype=next_obs.dtype) * sigma', 'act'),
    (7, 'a_smooth = np.clip(actor_forward(actor_targ, next_obs)[0] + xi, act_lo, act_hi)',
     'a_smooth = actor_forward(actor_targ, next_obs)[0] + xi', 'act'),
    (7, 'q_targ.min(axis=0)', 'q_targ.max(axis=0)', 'y is'),
    (7, 'gamma * (1 - batch["terminated"]) * q_targ', 'gamma * q_targ', 'y is'),
    (7, '* sigma, -c, c)', ', -c, c) * sigma', 'critic_forward gets another act'),
    (7, 'q_targ.min(axis=0)', 'q_targ.min()', 'y is'),
    (7, 'actor_forward(actor_targ, next_obs)[0] + xi',
     'actor_forward(actor_targ, batch["obs"])[0] + xi', 'actor_forward gets another obs'),
    (7, 'critic_forward(critic_targ, next_obs, a_smooth)',
     'critic_forward(critic_targ, batch["obs"], a_smooth)', 'critic_forward gets another obs'),
    (8, 'q1_only = {key: value[:1] for key', 'q1_only = {key: value for key', 'critic'),
    (8, 'dq1 = np.full_like(q1, -1.0 / n_batch)', 'dq1 = np.full_like(q1, 1.0 / n_batch)', 'dq'),
    (8, 'dq1 = np.full_like(q1, -1.0 / n_batch)', 'dq1 = np.full_like(q1, -1.0)', 'dq'),
    (8, 'return -float(q1.mean()), actor_backward', 'return float(q1.mean()), actor_backward', 'the loss'),
    (8, 'critic_backward(dq1, critic_cache, param_grads=False)',
     'critic_backward(dq1, critic_cache, param_grads=True)', 'critic_backward gets another param_grads'),
    (8, 'q1_only = {key: value[:1] for key', 'q1_only = {key: value[1:] for key', 'critic_forward gets another critic'),
    (9, '    targ *= 1 - tau\n    targ += tau * net["flat"]',
     '    net_targ["flat"] = (1 - tau) * targ + tau * net["flat"]', 'net_targ'),
    (9, '    targ *= 1 - tau\n    targ += tau * net["flat"]',
     '    targ *= tau\n    targ += (1 - tau) * net["flat"]', 'net_targ'),
    (9, '    targ += tau * net["flat"]', '    targ += tau * net_targ["flat"]', 'net_targ'),
    (9, '    targ *= 1 - tau\n', '', 'net_targ'),
    (10, '            m.reshape(-1)[dropped] = 0\n            v.reshape(-1)[dropped] = 0\n', '', 'm_W1'),
    (10, '    for l in (1, 2):\n        stacks', '    for l in (1,):\n        stacks', 'W2'),
    (10, '            v.reshape(-1)[dropped] = 0\n', '', 'v_W1'),
    (10, '            counts[f"W{l}" if len(stacks[0]) == 1 else f"Q{j + 1}.W{l}"] = dropped.size',
     '            counts[f"W{l}"] = dropped.size', 'the counts'),
    (11, '    if iteration % hp["policy_delay"] == 0:', '    if True:', 'actor_step'),
    (11, 'out["target_zeroed"] = (target_maintain_sparsity(actor, actor_targ)\n                                    + target_maintain_sparsity(critic, critic_targ))',
     'out["target_zeroed"] = 0', 'actor_targ'),
    (11, 'critic_step(critic, agent["opt_critic"], batch',
     'critic_step(critic, agent["opt_actor"], batch', 'critic_step gets another opt'),
    (11, 'y = td3_target(actor_targ, critic_targ, batch',
     'y = td3_target(actor, critic, batch', 'td3_target gets another actor_targ'),
    (11, '        soft_update(critic, critic_targ, hp["tau"])',
     '        soft_update(critic_targ, critic, hp["tau"])', 'soft_update'),
    (11, '        flush_subnormals(agent)\n', '        pass\n', 'opt_critic'),
    (11, 'dense = critic_loss_grads(without_masks(critic), batch, y)[2]',
     'dense = critic_loss_grads(critic, batch, y)[2]', 'critic_loss_grads gets another critic'),
    (11, 'eta = drop_fraction(iteration, hp) if adapt else None',
     'eta = hp["drop_fraction"] if adapt else None', 'topology_update gets another eta'),
    (12, 'loop["obs"] = env.reset()[0] if terminated or truncated else next_obs',
     'loop["obs"] = next_obs', 'explore gets another obs'),
    (12, 'buffer_add(buf, obs, act, rew, next_obs, terminated)  ',
     'buffer_add(buf, obs, act, rew, next_obs, terminated or truncated)  ', 'terminated'),
    (12, 'act = explore(agent, obs, t <= T0, rng)',
     'act = explore(agent, obs, t < T0, rng)', 'explore gets another warm_up'),
    (12, 'if t > T0 and buf["size"] >= hp["batch_size"]:', 'if t > T0:', 'train_iteration'),
    (12, 'log = train_iteration(agent, buf, t - T0, hp, rng)',
     'log = train_iteration(agent, buf, t, hp, rng)', 'train_iteration gets another iteration'),
    (12, 'hp["seed"] + 100)}', 'hp["seed"])}', 'evaluate gets another seed'),
    (12, '"eval_returns": evaluate(agent["actor"], eval_env,',
     '"eval_returns": evaluate(agent["actor"], env,', 'evaluate gets another env'),
    (12, 'for t in range(loop["step"] + 1, hp["total_steps"] + 1):',
     'for t in range(loop["step"], hp["total_steps"] + 1):', 'step is 0'),
]


@functools.lru_cache(maxsize=None)
def handout_data():
    """What a handout carries in course/cases.npz, written and read back as a handout's grader reads it."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cases.npz")
        course.save_data(path, course.recorded_data(dst_td3, course.HANDOUT_SEED))
        return course.load_data(path)


def grades(path, name):
    """{exercise: the line} of every exercise that a file loses, graded live (the instructor's side) and from the
    handout's data (the student's); the two must agree line for line."""
    module = course.load_module(path, name)
    lost = {}
    for row in course.EXERCISES:
        live = course.grade_here(module, row["number"], path=path)
        recorded = course.grade_here(module, row["number"], path=path, data=handout_data())
        assert live == recorded, f"grade_here: exercise {row['number']} differs between the instructor's grade " \
                                 f"({live!r}) and the handout's ({recorded!r})"
        if live:
            lost[row["number"]] = live
    return lost


def test_the_reference_earns_every_point_on_both_sides_and_on_other_seeds():
    for row in course.EXERCISES:
        for seed in (0, 7):
            found = course.grade_here(dst_td3, row["number"], seed=seed)
            assert found is None, f"grade_here: the reference loses exercise {row['number']} at seed {seed}: {found}"
        found = course.grade_here(dst_td3, row["number"], data=handout_data())
        assert found is None, f"grade_here: the reference loses exercise {row['number']} from the data: {found}"


def test_each_planted_mistake_costs_its_own_exercise_only_and_names_the_term(tmp_path):
    missed = []
    for i, (number, old, new, term) in enumerate(PLANTED):
        assert REFERENCE.count(old) == 1, f"PLANTED[{i}]: {old!r} occurs {REFERENCE.count(old)} times in dst_td3.py"
        path = str(tmp_path / f"planted{i}.py")
        course.write_text(path, REFERENCE.replace(old, new))
        lost = grades(path, f"planted{i}")
        line = lost.get(number, "")
        if list(lost) != [number] or term not in line or " raised " in line:
            missed.append(f"PLANTED[{i}] (exercise {number}, {term!r}): {lost}")
    assert not missed, "planted mistakes not caught by their own exercise alone, or not named:\n" + "\n".join(missed)


# ---------------------- Mutation testing: the kit's own mutator, on every exercise body
SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
         ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.Mod: ast.FloorDiv, ast.FloorDiv: ast.Mod, ast.And: ast.Or, ast.Or: ast.And}
ALTERNATIVES = {"min": "max", "max": "min", "sum": "mean", "mean": "sum"}


def swap_op(node):
    node.op = SWAPS[type(node.op)]()


def mutations(node):
    """(what, how) for each mutation of one node: operators, comparisons, constants, a unary minus or not,
    the first two arguments of a call, min/max and sum/mean, and (for statements) the statement removed."""
    found = []
    if isinstance(node, (ast.BinOp, ast.AugAssign, ast.BoolOp)) and type(node.op) in SWAPS:
        found.append((f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}", swap_op))
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in SWAPS:
                found.append((f"{type(op).__name__} -> {SWAPS[type(op)].__name__}",
                              lambda n, k=k: n.ops.__setitem__(k, SWAPS[type(n.ops[k])]())))
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        for value in sorted({node.value + 1, node.value - 1, 0, 2 * node.value} - {node.value}):
            found.append((f"{node.value!r} -> {value!r}", lambda n, value=value: setattr(n, "value", value)))
    if isinstance(node, ast.Constant) and type(node.value) is bool:
        found.append((f"{node.value} -> {not node.value}", lambda n: setattr(n, "value", not n.value)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        found.append(("unary removed", "unwrap"))
    if isinstance(node, ast.Call) and len(node.args) >= 2:
        found.append(("arguments 1 and 2 swapped", lambda n: n.args.__setitem__(slice(0, 2), n.args[1::-1])))
    if isinstance(node, ast.Name) and node.id in ("min", "max"):
        found.append((f"{node.id} -> {ALTERNATIVES[node.id]}", lambda n: setattr(n, "id", ALTERNATIVES[n.id])))
    if isinstance(node, ast.Attribute) and node.attr in ALTERNATIVES:
        found.append((f".{node.attr} -> .{ALTERNATIVES[node.attr]}",
                      lambda n: setattr(n, "attr", ALTERNATIVES[n.attr])))
    if isinstance(node, ast.stmt) and not isinstance(node, ast.Return):
        found.append(("statement removed", "remove"))
    return found


def replace_node(tree, target, replacement):
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, replacement)
            elif isinstance(value, list) and target in value:
                value[value.index(target)] = replacement


def body_nodes(function):
    """Every node of a function's body after the docstring, each with the innermost simple statement that holds
    it (for a label a reader can find)."""
    start = 1 if ast.get_docstring(function) is not None else 0
    found = []
    for statement in function.body[start:]:
        for node in ast.walk(statement):
            found.append(node)
    return found


def holder(function, node):
    """The first line of the innermost statement of function that holds node."""
    best = None
    for statement in ast.walk(function):
        if isinstance(statement, ast.stmt) and any(inner is node for inner in ast.walk(statement)):
            best = statement
    return ast.unparse(best).splitlines()[0].strip()


def mutants(source, name):
    """(label, source) of every mutant of one function's body; a label names the function, the mutated
    expression and the mutation, and a number where one expression has several of the same."""
    tree = ast.parse(source)
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)
    first, last, _ = course.function_spans(source)[name]
    lines = source.split("\n")
    seen = {}
    for index, node in enumerate(body_nodes(function)):
        for what, how in mutations(node):
            copy_of = copy.deepcopy(function)
            target = body_nodes(copy_of)[index]
            if how == "remove":
                replace_node(copy_of, target, ast.Pass())
            elif how == "unwrap":
                replace_node(copy_of, target, target.operand)
            else:
                how(target)
            label = f"{name}: {holder(function, node)[:70]}: {ast.unparse(node).splitlines()[0][:30]}: {what}"
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:
                label += f" #{seen[label]}"
            text = ast.unparse(ast.fix_missing_locations(copy_of))
            yield label, "\n".join(lines[:first - 1] + [text] + lines[last:])


# The mutants that keep full points, each with the reason it computes what the rule computes.
SAME_AXES = "swapaxes(-1, -2) and swapaxes(-2, -1) are one transpose"
ANY_NEGATIVE = "reshape(-2) is reshape(-1): numpy takes any negative size as the one to infer"
PERF_BRANCH = "the one-output branch is a PERF shortcut: both branches give the same numbers"
MIN_COMMUTES = "min(a, b) is min(b, a)"
SAME_LENGTH = "the four stacks of one layer have one length (1, or 2 twins)"
NO_TIES = ("with no two |w| equal (the cases are drawn without ties) the cut selects the same set; the mutant "
           "kept its points on the cases of seeds 1 to 30 too")
PARTITION = ("np.argpartition puts the k smallest first for kth = k - 1, k or k + 1 alike: the same set; the "
             "mutant kept its points on the cases of seeds 1 to 30 too")
MULTIPLY_COMMUTES = "np.multiply(a, b, out=c) is np.multiply(b, a, out=c)"
CLIP_ORDER = "np.clip(x, lo, hi) is min(max(x, lo), hi), and max(x, lo) is max(lo, x): np.clip(lo, x, hi) is the same"
CONTINUOUS = "rng.random() equals p with probability 0"
WRAP = "minus 2 instead of minus 1 still sends the zeros' key to the top: no |w| has the bits 1"
EQUIVALENT = {
    'masked_linear_backward: if need_dx and W.shape[-1] == 1:: 1: 1 -> 0':
        PERF_BRANCH,
    'masked_linear_backward: dx = dy * W.swapaxes(-1, -2): W.swapaxes(-1, -2): arguments 1 and 2 swapped':
        SAME_AXES,
    'masked_linear_backward: if need_dx and W.shape[-1] == 1:: -1: unary removed':
        PERF_BRANCH,
    'masked_linear_backward: dx = dy @ W.swapaxes(-1, -2): W.swapaxes(-1, -2): arguments 1 and 2 swapped':
        SAME_AXES,
    'masked_linear_backward: if need_dx and W.shape[-1] == 1:: 1: 1 -> 0 #2':
        PERF_BRANCH,
    'masked_linear_backward: if need_dx and W.shape[-1] == 1:: 1: 1 -> 2 #2':
        PERF_BRANCH,
    'masked_linear_backward: dW = x.swapaxes(-1, -2) @ dy: x.swapaxes(-1, -2): arguments 1 and 2 swapped':
        SAME_AXES,
    'er_probability: return min(1.0, lam * (n_in + n_out) / (n_in * n_out)): min(1.0, lam * (n_in + n_out) : arguments 1 and 2 swapped':
        MIN_COMMUTES,
    'erdos_renyi_mask: return (rng.random((n_in, n_out)) < p).astype(dtype): rng.random((n_in, n_out)) < p: Lt -> LtE':
        CONTINUOUS,
    'drop_and_grow: w, mask = (W.reshape(-1), M.reshape(-1)): 1: 1 -> 2':
        ANY_NEGATIVE,
    'drop_and_grow: w, mask = (W.reshape(-1), M.reshape(-1)): 1: 1 -> 2 #2':
        ANY_NEGATIVE,
    'drop_and_grow: k_pos = min(math.ceil(eta * pos.size), room): min(math.ceil(eta * pos.size),: arguments 1 and 2 swapped':
        MIN_COMMUTES,
    'drop_and_grow: k_neg = min(math.ceil(eta * neg.size), room - k_pos): min(math.ceil(eta * neg.size),: arguments 1 and 2 swapped':
        MIN_COMMUTES,
    'drop_and_grow: drop_pos = pos[np.argpartition(w[pos], k_pos - 1)[:k_pos]] if k_pos el: k_pos - 1: Sub -> Add':
        PARTITION,
    'drop_and_grow: drop_pos = pos[np.argpartition(w[pos], k_pos - 1)[:k_pos]] if k_pos el: 1: 1 -> 0':
        PARTITION,
    'drop_and_grow: drop_pos = pos[np.argpartition(w[pos], k_pos - 1)[:k_pos]] if k_pos el: 1: 1 -> 2':
        PARTITION,
    'drop_and_grow: drop_neg = neg[np.argpartition(-w[neg], k_neg - 1)[:k_neg]] if k_neg e: k_neg - 1: Sub -> Add':
        PARTITION,
    'drop_and_grow: drop_neg = neg[np.argpartition(-w[neg], k_neg - 1)[:k_neg]] if k_neg e: 1: 1 -> 0':
        PARTITION,
    'drop_and_grow: drop_neg = neg[np.argpartition(-w[neg], k_neg - 1)[:k_neg]] if k_neg e: 1: 1 -> 2':
        PARTITION,
    'maintain_sparsity: w = W_targ.reshape(-1): 1: 1 -> 2':
        ANY_NEGATIVE,
    "maintain_sparsity: key = np.abs(w).view(f'u{w.itemsize}') - 1: 1: 1 -> 2":
        WRAP,
    'maintain_sparsity: kth = np.partition(key, n_extra - 1)[n_extra - 1]: n_extra - 1: Sub -> Add #2':
        NO_TIES,
    'maintain_sparsity: kth = np.partition(key, n_extra - 1)[n_extra - 1]: 1: 1 -> 0':
        NO_TIES,
    'maintain_sparsity: kth = np.partition(key, n_extra - 1)[n_extra - 1]: 1: 1 -> 0 #2':
        NO_TIES,
    'maintain_sparsity: kth = np.partition(key, n_extra - 1)[n_extra - 1]: 1: 1 -> 2 #2':
        NO_TIES,
    'maintain_sparsity: smallest = np.flatnonzero(key < kth): key < kth: Lt -> LtE':
        NO_TIES,
    'maintain_sparsity: ties = np.flatnonzero(key == kth)[:n_extra - smallest.size]: n_extra - smallest.size: Sub -> Add':
        NO_TIES,
    'adam_step: np.multiply(W, weight_decay, out=g): np.multiply(W, weight_decay, o: arguments 1 and 2 swapped':
        MULTIPLY_COMMUTES,
    'adam_step: m += np.multiply(g, 1 - beta1, out=tmp): np.multiply(g, 1 - beta1, out=: arguments 1 and 2 swapped':
        MULTIPLY_COMMUTES,
    'adam_step: np.multiply(g, g, out=tmp): np.multiply(g, g, out=tmp): arguments 1 and 2 swapped':
        MULTIPLY_COMMUTES,
    'td3_target: xi = np.clip(rng.standard_normal((next_obs.shape[0], sigma.size), dtyp: np.clip(rng.standard_normal((n: arguments 1 and 2 swapped':
        CLIP_ORDER,
    'td3_target: a_smooth = np.clip(actor_forward(actor_targ, next_obs)[0] + xi, act_lo: np.clip(actor_forward(actor_ta: arguments 1 and 2 swapped':
        CLIP_ORDER,
    "topology_update: dense = as_stack(dense_grads[f'W{l}']) if dense_grads else [None] * le: 0: 0 -> -1":
        SAME_LENGTH,
    "topology_update: dense = as_stack(dense_grads[f'W{l}']) if dense_grads else [None] * le: 0: 0 -> 1":
        SAME_LENGTH,
    'topology_update: m.reshape(-1)[dropped] = 0: 1: 1 -> 2':
        ANY_NEGATIVE,
    'topology_update: v.reshape(-1)[dropped] = 0: 1: 1 -> 2':
        ANY_NEGATIVE,
    "topology_update: counts[f'W{l}' if len(stacks[0]) == 1 else f'Q{j + 1}.W{l}'] = dropped: 0: 0 -> -1":
        SAME_LENGTH,
    "topology_update: counts[f'W{l}' if len(stacks[0]) == 1 else f'Q{j + 1}.W{l}'] = dropped: 0: 0 -> 1":
        SAME_LENGTH,
}


def test_every_mutant_of_an_exercise_body_loses_its_own_exercise_on_both_sides(tmp_path):
    """The kit's strength: each mutant of an exercise's function loses that exercise's points, from the
    instructor's folder and from a handout alike, or is in EQUIVALENT with its reason. (A mutant can cost no other
    exercise: every other exercise replaces the function with a stub.) The score goes in the README."""
    survived = []
    equivalent = []
    killed = 0
    total = 0
    for row in course.EXERCISES:
        for name in row["functions"]:
            for label, source in mutants(REFERENCE, name):
                path = str(tmp_path / "mutant.py")
                course.write_text(path, source)
                total += 1
                try:
                    module = course.load_module(path, "mutant")
                except Exception:                          # a mutant that does not even import: lost everywhere
                    killed += 1
                    continue
                live = course.grade_here(module, row["number"], path=path)
                recorded = course.grade_here(module, row["number"], path=path, data=handout_data())
                assert (live is None) == (recorded is None), f"mutant {label}: {live!r} against {recorded!r}"
                if live is None and label not in EQUIVALENT:
                    survived.append(label)
                if live is None and label in EQUIVALENT:
                    equivalent.append(label)
                killed += live is not None
    assert not survived, "mutants that keep full points and are not in EQUIVALENT:\n" + "\n".join(survived)
    stale = sorted(set(EQUIVALENT) - set(equivalent))
    assert not stale, "EQUIVALENT lists mutants that no longer keep full points (or no longer exist):\n" + \
        "\n".join(stale)
    print(f"mutation score: {killed} of {total} mutants lose their exercise's points, {len(EQUIVALENT)} equivalent")
    assert (killed, total) == MUTATION_SCORE, f"the README's mutation score is {MUTATION_SCORE}: now {(killed, total)}"


MUTATION_SCORE = (399, 437)   # (killed, all), as the README gives it


# ---------------------- The student's folder
MIN_NODES = 8   # a fragment of a removed body smaller than this (`return dx, dW, db`) says nothing of the answer


KEPT_NAMES = {name for name in dir(dst_td3) if not name.startswith("_")} | set(dir(__builtins__))


def normalised(node):
    """A syntax tree as text with every variable renamed in order of appearance: renaming hides nothing. The
    names of the program's functions and constants, numpy's and Python's, stay: they are what a fragment does."""
    node = copy.deepcopy(node)
    names = {}
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and inner.id not in KEPT_NAMES:
            inner.id = names.setdefault(inner.id, f"v{len(names)}")
        elif isinstance(inner, ast.arg):
            inner.arg = names.setdefault(inner.arg, f"v{len(names)}")
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def fragments(tree):
    """The normalised statements and expressions of a tree that have at least MIN_NODES nodes."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.stmt, ast.expr)) and not isinstance(node, ast.FunctionDef):
            if sum(1 for inner in ast.walk(node) if not isinstance(inner, ast.expr_context)) >= MIN_NODES:
                found.add(normalised(node))
    return found


def removed_fragments():
    """{fragment: function} of every exercise body of the reference, but for those that the program holds
    outside the exercises too (the calls of `train` in the ones around it, say): those it shows a student anyway."""
    tree = ast.parse(REFERENCE)
    found = {}
    elsewhere = set()
    for node in tree.body:
        exercise = isinstance(node, ast.FunctionDef) and node.name in removed_functions()
        start = 1 if exercise and ast.get_docstring(node) is not None else 0
        body = node.body[start:] if exercise else [node]
        for statement in body:
            for fragment in fragments(statement):
                if exercise:
                    found.setdefault(fragment, node.name)
                else:
                    elsewhere.add(fragment)
    return {fragment: name for fragment, name in found.items() if fragment not in elsewhere}


@pytest.fixture(scope="module")
def student_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handout") / "student"
    result = subprocess.run([sys.executable, os.path.join(HERE, "course.py"), "handout", str(folder)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return folder


def test_the_handout_is_the_students_folder_and_holds_no_removed_body(student_folder):
    names = sorted(os.listdir(student_folder))
    assert names == ["LICENSE", "README.md", "course", "dst_td3.py", "requirements.txt", "test_dst_td3.py"], names
    assert sorted(os.listdir(student_folder / "course")) == ["cases.npz", "course.py"]
    removed = removed_fragments()
    leaks = []
    for path in ("dst_td3.py", "test_dst_td3.py", os.path.join("course", "course.py")):
        tree = ast.parse(course.read_text(student_folder / path))
        for fragment in fragments(tree) & set(removed):
            leaks.append(f"{path}: a fragment of {removed[fragment]}'s body: {fragment[:100]}")
    assert not leaks, "handout: code that computes a removed body, by the syntax tree:\n" + "\n".join(leaks)
    student = course.read_text(student_folder / "dst_td3.py")
    blank = course.load_module(str(student_folder / "dst_td3.py"), "blank")
    for row in course.EXERCISES:
        for name in row["functions"]:
            assert course.is_blank(blank, name), f"handout: {name} is not blank in the student's dst_td3.py"
    assert "PLANTED" not in course.read_text(student_folder / "test_dst_td3.py")
    assert student.count("raise NotImplementedError") >= len(removed_functions())


def removed_functions():
    return [name for row in course.EXERCISES for name in row["functions"]]


def test_a_renamed_copy_of_a_body_is_found_by_the_leak_check():
    """The check compares syntax trees with the names normalised: renaming a removed line does not hide it."""
    renamed = "def helper(a, b):\n    return a * (1 - b * b)\n"          # tanh_backward's body, renamed
    assert fragments(ast.parse(renamed)) & set(removed_fragments()), "normalised: a renamed body is not found"


def test_the_students_grade_is_the_instructors_on_the_same_file(student_folder, tmp_path):
    """A planted mistake graded by `grade` in the student's folder (recorded cases) and in the project (live)."""
    number, old, new, term = PLANTED[20]
    path = tmp_path / "student.py"
    course.write_text(path, REFERENCE.replace(old, new))
    outputs = []
    for folder in (student_folder, PROJECT):
        result = subprocess.run([sys.executable, os.path.join(folder, "course", "course.py"), "grade", str(path),
                                 "--json", str(tmp_path / "results.json")], capture_output=True, text=True,
                                timeout=300, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        outputs.append(result.stdout)
        report = json.loads(course.read_text(tmp_path / "results.json"))
        lost = [test for test in report["tests"] if test["score"] < test["max_score"]]
        assert len(lost) == 1 and lost[0]["name"].startswith(f"exercise {number}:") and term in lost[0]["output"], \
            report
    assert outputs[0] == outputs[1], f"grade: the student's folder and the project disagree:\n{outputs[0]}\n{outputs[1]}"


def test_the_students_pytest_opens_with_the_blank_exercises_line(student_folder):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
                            capture_output=True, text=True, timeout=300, cwd=student_folder)
    assert "exercise 1: masked_linear_backward is not written yet: return dx = dy @ Wᵀ" in result.stdout, \
        result.stdout[-2000:]


def test_gradescope_files_grade_a_submission_and_a_file_that_does_not_import(tmp_path):
    root = tmp_path / "autograder"
    result = subprocess.run([sys.executable, os.path.join(HERE, "course.py"), "autograder", str(root / "source")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("setup.sh", "run_autograder"):
        assert os.access(root / "source" / name, os.X_OK), name
    for submitted, expected in ((REFERENCE, 100), (REFERENCE.replace("def mse_loss(", "def mse_loss(:"), 0)):
        (root / "submission").mkdir(exist_ok=True)
        (root / "results").mkdir(exist_ok=True)
        course.write_text(root / "submission" / "dst_td3.py", submitted)
        script = course.read_text(root / "source" / "run_autograder").replace("/autograder", str(root))
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
        report = json.loads(course.read_text(root / "results" / "results.json"))
        assert report["score"] == expected, (report, result.stderr)
        if expected == 0:
            assert "the file does not import: SyntaxError" in report["tests"][0]["output"], report["tests"][0]


@pytest.mark.parametrize("argv,message", [
    (["handout", "FOLDER"], "is not empty"),
    (["handout", "NEW", "--exercises", "1,13"], "'13' is not an exercise number (1 to 12)"),
    (["grade", "MISSING.py"], "no such file"),
    (["grade", "FOLDER"], "is a folder"),
    (["grade", "--seed", "-1"], "'-1' is not a seed"),
])
def test_course_commands_bad_input_is_one_line_and_exit_code_2(tmp_path, argv, message):
    (tmp_path / "FOLDER").mkdir()
    (tmp_path / "FOLDER" / "work.py").write_text("# the student's work\n")
    result = subprocess.run([sys.executable, os.path.join(HERE, "course.py"), *argv], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr.splitlines()[-1], result.stderr
    assert course.read_text(tmp_path / "FOLDER" / "work.py") == "# the student's work\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs a full device, /dev/full")
def test_a_full_disk_names_the_file_not_stdout():
    result = subprocess.run([sys.executable, os.path.join(HERE, "course.py"), "grade", "--exercises", "9", "--json",
                             "/dev/full"], capture_output=True, text=True, timeout=120, cwd=PROJECT)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == "course.py: error: /dev/full: No space left on device", result.stderr


def test_readme_teaching_table_is_the_exercise_table():
    readme = course.read_text(os.path.join(PROJECT, "README.md"))
    assert course.teaching_table(course.EXERCISES) in readme, "README: the teaching table is not teaching_table()"
    killed, total = MUTATION_SCORE
    assert f"{killed} of {total} mutants" in readme, "README: the mutation score is not MUTATION_SCORE"
