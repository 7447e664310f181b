"""DS-TD3: Dynamic Sparse Training for deep RL, in one readable numpy file.

Run:   python dst_td3.py --env Hopper-v4              (DS-TD3 with the paper's defaults)
       python dst_td3.py --env Hopper-v4 --algo td3   (dense TD3 baseline)
Help:  python dst_td3.py --help                       (every hyperparameter, with its paper default)

The actor and both critics of TD3 are trained as *sparse* networks from scratch. Each of their first two weight
matrices starts with an Erdős–Rényi random mask (about half the weights absent), and every e training
iterations the weakest connections are dropped and as many are regrown at random places. The number of
weights stays fixed; their positions change as the weights learn. Everything here (layers, backprop, Adam) is
written out by hand in numpy so that every step can be read and checked.

Reinforcement learning in twenty lines. An agent sees an observation s (S numbers: joint angles, speeds) and
picks an action a (A numbers in [lo, hi]: motor torques); the environment answers with a reward r and the next
observation s'. One such exchange is a *step*. Steps form an *episode*, which ends in one of two ways:
*terminated* (the robot fell: a true end, nothing more to earn) or *truncated* (a time limit cut it, though the
robot could have gone on). The *return* is the sum of an episode's rewards; training maximises the discounted
return r₀ + γ·r₁ + γ²·r₂ + ..., where γ = 0.99 weighs the near future more than the far.
The *policy*, or *actor*, π(s) maps an observation to an action. The *Q-function*, or *critic*, Q(s, a)
estimates the discounted return of taking a in s and following π afterwards. It learns from the *bootstrap*
target y = r + γ·Q(s', π(s')): one real reward plus the critic's own estimate of the rest. A terminated step
has no rest (y = r); a truncated one has, so only termination cuts the bootstrap. The actor improves by
following ∂Q/∂a through the critic: the *deterministic policy gradient*. Past steps are kept in a *replay
buffer* and learnt from in random batches, and slowly following copies of the networks, the *target networks*
π' and Q', give targets that do not move with every update. TD3 adds three tricks: two critics and the smaller
of their targets (clipped double-Q), actor and target updates only every d = 2 critic updates (delayed policy
updates), and clipped noise on the target action (target policy smoothing).
Here a *step* is one environment step, and an *iteration* is one update of the critics (and, every d-th time,
of the actor and the targets); one iteration follows every step after the first T₀ uniformly random ones.

Shape legend:  B batch   S observation size   A action size   H hidden width (256)
               2 the twin-critic axis: both critics live in one array, Q1 at index 0 and Q2 at index 1.
Symbols (each has one meaning in the pseudocode below; the flag that sets it in brackets):
  s, a, r, s'   observation, action, reward, next observation;  lo, hi the action bounds, max_a = (hi - lo) / 2
  t, i          environment step, training iteration i = t - T₀;  T the run's steps [--total-steps], T₀ the
                uniformly random warm-up steps [--learning-starts], B transitions per iteration [--batch-size]
  π_φ, Q_θ1,2   the actor with its weights and biases φ, and the twin critics with theirs, θ1 and θ2
  π', Q', φ', θ'  the target networks and their parameters;  τ their update rate [--tau]
  y, γ, d       the bootstrap target, the discount [--gamma], the actor and target period [--policy-delay]
  ã, ξ, σ̃, c    the smoothed target action, its noise ξ ~ N(0, σ̃²) [--policy-noise] clipped to ±c [--noise-clip]
  W, M, w, k    a layer's weights and its 0/1 mask of connections (W·M = W), one weight, and k the connections
                of an online layer, which MaintainSparsity keeps in its target
  λ1, λ2, p     Erdős–Rényi factors [--lambda-in, --lambda-hidden]; p = λ·(n_in + n_out) / (n_in·n_out) (Eq. 1)
  e, η          topology update period [--update-period], fraction of each sign dropped and regrown [--drop-fraction]

DS-TD3 [DS-TD3, Alg. 1-3], line by line as the training loop (train, section 10) and the iteration it calls
(train_iteration, section 8) run it:
    init actor π_φ and critics Q_θ1, Q_θ2 with Erdős–Rényi masks (Eq. 1); targets φ' ← φ, θ' ← θ
                                                              (build_agent, section 8: the agent train is given)
    for t = 1 .. T:
        a = uniform in [lo, hi] if t <= T₀, else clip(π(s) + N(0, (0.1·max_a)²), lo, hi)
        step the env, store (s, a, r, s', terminated) in the replay buffer; at an episode's end, reset
        if t > T₀, training iteration i = t - T₀:
            sample a batch of B transitions
            ã = clip(π'(s') + clip(ξ, -c, c), lo, hi)
            y = r + γ·(1 - terminated)·min(Q'1(s', ã), Q'2(s', ã))
            critic step on  Σ_j mean((Q_θj(s, a) - y)²)
            if i % e == 0 and adaptation has not stopped:  drop-and-grow in the critics   (Alg. 2)
            if i % d == 0:
                actor step on  -mean(Q_θ1(s, π(s)))
                if i % e == 0 and adaptation has not stopped:  drop-and-grow in the actor
                θ' ← τθ + (1-τ)θ',  φ' ← τφ + (1-τ)φ'                                 (Eq. 6)
                MaintainSparsity: keep the k largest |w| of each sparse target matrix (Alg. 3, Eq. 7)
        if t % eval_every == 0:  the return of 10 deterministic episodes on a separate env seeded seed + 100

Three algorithms share this loop (--algo): td3 (dense), static-td3 (masks that never change) and ds-td3 (above).

Differences from the paper and from its official code, github.com/GhadaSokar/Dynamic-Sparse-Training-for-Deep-
Reinforcement-Learning (each is marked `# CHOICE:` where it happens):
  - Adam's moments are masked too: an absent connection has weight, gradient and moments exactly 0.
  - Drop: η of the positive and η of the negative weights (as the official code), rounded up. Grow: among the
    positions absent before the update, at weight 0. The first update comes at iteration e.
  - Adaptation stops at --stop-adapt·T (the official code's iteration at the paper's settings), then one
    drop-only update. MaintainSparsity keeps as many target weights as the online layer has connections.
  - Gymnasium v4 tasks (gym v3's dynamics); warm-up actions from our one seeded RNG, `rng`; every 100
    iterations, weights and moments below float32's smallest normal number are set to 0 (flush_subnormals).

References (the keys used in comments):
  [TD3]    S. Fujimoto et al. Addressing Function Approximation Error in Actor-Critic Methods. ICML 2018.
  [DS-TD3] G. Sokar et al. Dynamic Sparse Training for Deep Reinforcement Learning. IJCAI 2022, arXiv:2106.04217
           (its long version numbers Algorithms 1-3 and Eqs. 1-10).
  [SET]    D. C. Mocanu et al. Scalable training of artificial neural networks with adaptive sparse connectivity
           inspired by network science. Nature Communications 2018.
  [Adam]   D. P. Kingma, J. Ba. Adam: A Method for Stochastic Optimization. ICLR 2015.
  [RigL]   U. Evci et al. Rigging the Lottery: Making All Tickets Winners. ICML 2020.
  [Graesser] L. Graesser et al. The State of Sparse Training in Deep Reinforcement Learning. ICML 2022.

Part I, the method, reads top to bottom and ends on the training loop; Part II runs it (command line, run
folders, checkpoints, --watch), and its section 14 explains every logged metric and topology.csv.
"""
# Part II's first lines, here because they must come before the imports: numpy takes a second to import, and
# Ctrl-C during it would print a traceback. Run as a program, Ctrl-C until main (section 17) starts ends it quietly.
import signal

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)

# #############################################################################################################
#                                       PART I — THE METHOD
# #############################################################################################################

# =============================================================================
# 1. Imports, the floating-point type and the paper's hyperparameters.
# =============================================================================
import collections
import math
import os

# One BLAS thread by default: two seeds side by side then use one core each; override from the shell, e.g.
# OPENBLAS_NUM_THREADS=2. TRAP: BLAS reads this once, when numpy is imported, so it comes first.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

DTYPE = np.float32  # training runs in float32 end to end; the tests check the math in float64

# The hyperparameters, one row each: the --help group it belongs to, its type, the paper's value [DS-TD3, Sec. 5;
# TD3, Sec. 6], the values it may take (an interval, whose end may name another hyperparameter, or the choices),
# the algorithms that read it, and what it means. Those marked (lab) are not the paper's: they belong to the
# *lab*, the options that compare DS-TD3's choices with those of later work (README, Experiments to try). Part II
# makes the command line, its --help and its input checks from this one table; the functions below receive the
# values as `hp`, a plain dict: hp["gamma"].
Hyperparameter = collections.namedtuple("Hyperparameter", "group type default valid read_by meaning")
ALL = ("ds-td3", "static-td3", "td3")                    # the algorithms (--algo)
SPARSE = ("ds-td3", "static-td3")                        # those with masks
HYPERPARAMETERS = {
    "algo": Hyperparameter("experiment", str, "ds-td3", ALL, ALL,
                           "ds-td3: evolving sparse masks; static-td3: fixed sparse masks; td3: dense"),
    "seed": Hyperparameter("experiment", int, 0, "[0, inf)", ALL,
                           "seeds the RNG, the training env (seed) and the evaluation env (seed + 100)"),
    "total_steps": Hyperparameter("experiment", int, 1_000_000, "(learning_starts, inf)", ALL,
                                  "environment steps T (more than the warm-up, or nothing trains)"),
    "learning_starts": Hyperparameter("experiment", int, 25_000, "[0, inf)", ALL,
                                      "warm-up: uniformly random steps T₀ before training"),
    "batch_size": Hyperparameter("TD3", int, 100, "[1, total_steps]", ALL, "transitions per training iteration B"),
    "buffer_size": Hyperparameter("TD3", int, 1_000_000, "[batch_size, inf)", ALL,
                                  "replay buffer capacity (at least a batch)"),
    "hidden": Hyperparameter("TD3", int, 256, "[1, inf)", ALL, "width H of both hidden layers"),
    "gamma": Hyperparameter("TD3", float, 0.99, "[0, 1]", ALL, "discount γ"),
    "tau": Hyperparameter("TD3", float, 0.005, "(0, 1]", ALL, "target update rate τ"),
    "lr": Hyperparameter("TD3", float, 1e-3, "(0, inf)", ALL, "Adam's learning rate, actor and critics"),
    "weight_decay": Hyperparameter("TD3", float, 2e-4, "[0, inf)", ALL,
                                   "L2 coefficient added to the gradient [DS-TD3]"),
    "expl_noise": Hyperparameter("TD3", float, 0.1, "[0, 1]", ALL,
                                 "exploration noise std, a fraction of the max action (beyond 1, mostly clipped)"),
    "policy_noise": Hyperparameter("TD3", float, 0.2, "[0, 1]", ALL,
                                   "target smoothing std σ̃, a fraction of the max action (as --expl-noise)"),
    "noise_clip": Hyperparameter("TD3", float, 0.5, "[0, 2]", ALL,
                                 "target smoothing clip c, a fraction of the max action (beyond 2, never binds)"),
    "policy_delay": Hyperparameter("TD3", int, 2, "[1, inf)", ALL, "actor and target update period d, in iterations"),
    "lambda_in": Hyperparameter("DS-TD3", float, None, "(0, inf)", SPARSE,
                                "Erdős–Rényi factor λ1 of the input layer; none: the paper's for the task "
                                "(LAMBDA_IN)"),
    "lambda_hidden": Hyperparameter("DS-TD3", float, 64.0, "(0, inf)", SPARSE,
                                    "Erdős–Rényi factor λ2 of the hidden layer"),
    "drop_fraction": Hyperparameter("DS-TD3", float, 0.05, "(0, 1)", ("ds-td3",),
                                    "η, the fraction of each sign dropped and regrown at a topology update"),
    "update_period": Hyperparameter("DS-TD3", int, 1000, "[1, inf)", ("ds-td3",),
                                    "topology update period e, in iterations (a multiple of d)"),
    "stop_adapt": Hyperparameter("DS-TD3", float, 0.95, "[0, 1]", ("ds-td3",),
                                 "regrow while the env step is at most this fraction of T (official code: "
                                 "T - T₀ - 50,000)"),
    "sparsity": Hyperparameter("lab", float, None, "[0, 1)", SPARSE,
                               "(lab) target sparsity of each network; none: the paper's λ1, λ2 decide"),
    "grow": Hyperparameter("lab", str, "random", ("random", "gradient"), ("ds-td3",),
                           "(lab) where connections regrow: random [SET], or gradient, the largest |∂L/∂W| [RigL]"),
    "drop_schedule": Hyperparameter("lab", str, "constant", ("constant", "cosine"), ("ds-td3",),
                                    "(lab) η at each update: constant, or cosine, decayed to 0 [RigL; Graesser]"),
    "distribution": Hyperparameter("lab", str, "er", ("er", "uniform"), SPARSE,
                                   "(lab) layer densities: er, Erdős–Rényi (Eq. 1), or uniform, one density "
                                   "[Graesser]"),
    "eval_every": Hyperparameter("logs", int, 5000, "[1, inf)", ALL, "evaluate every this many environment steps"),
    "eval_episodes": Hyperparameter("logs", int, 10, "[1, inf)", ALL, "deterministic episodes per evaluation"),
}
# λ1, the Erdős–Rényi factor of the input layer, per task family [DS-TD3, Sec. 5]
LAMBDA_IN = {"HalfCheetah": 7.0, "Hopper": 7.0, "Walker2d": 7.0, "Ant": 40.0, "Humanoid": 61.0}
DEFAULT_LAMBDA_IN = 7.0  # CHOICE: tasks the paper did not run get the value of its three small tasks

# =============================================================================
# 2. Layers. Each *_forward returns (out, cache); *_backward takes (dout, cache).
#    Every function also works with a leading twin axis: x (B, n) with W (2, n, m) gives (2, B, m).
# =============================================================================
def masked_linear_forward(x, W, b, M=None):
    """y = x @ (W*M) + b.   x: (..., B, n_in)  W, M: (..., n_in, n_out)  b: (..., 1, n_out)
    Absent weights are kept exactly 0 at all times (the backward masks their gradient, Adam keeps them at 0,
    drop-and-grow zeroes the dropped ones), so W*M == W and the forward needs no multiplication by M."""
    y = x @ W                                            # (..., B, n_in) @ (..., n_in, n_out) -> (..., B, n_out)
    y += b                                               # PERF: y = x @ W + b without a 2nd (2, B, H) array: 6 %
    return y, (x, W, M)

def masked_linear_backward(dy, cache, need_dx=True, need_dW=True):
    """dy: (..., B, n_out) -> dx: (..., B, n_in), dW: (..., n_in, n_out), db: (..., 1, n_out).
    need_dx=False skips dx (the input is data), need_dW=False skips dW and db (only ∂Q/∂a is wanted).
    A skipped result is returned as None."""
    x, W, M = cache
    dx = None
    if need_dx and W.shape[-1] == 1:
        # PERF: with one output (the critic's last layer) the matmul below is an outer product, for which numpy
        # runs an unvectorised loop over a stack: this broadcast, the same numbers, saves 11 % of an iteration
        dx = dy * W.swapaxes(-1, -2)                     # (..., B, 1) * (..., 1, n_in)
    elif need_dx:
        dx = dy @ W.swapaxes(-1, -2)                     # (..., B, n_out) @ (..., n_out, n_in)
    dW = db = None
    if need_dW:
        dW = x.swapaxes(-1, -2) @ dy                     # (..., n_in, B) @ (..., B, n_out)
        if M is not None:
            dW *= M                                      # TRAP: an absent connection must get exactly 0
        db = dy.sum(axis=-2, keepdims=True)              # b was broadcast over the batch, so we sum over it
    return dx, dW, db

def relu_forward(z):
    """h = max(z, 0).   z: any shape"""
    h = np.maximum(z, 0)
    return h, h                                          # h > 0 exactly where z > 0, so h is the cache

def relu_backward(dh, h):
    """through relu: dz = dh where z > 0, else 0"""
    return dh * (h > 0)

def tanh_forward(z):
    """y = tanh(z)"""
    y = np.tanh(z)
    return y, y

def tanh_backward(dy, y):
    """through tanh: dz = dy · (1 - y²)"""
    return dy * (1 - y * y)

def mse_loss(pred, target):
    """L = Σ_twins mean_B (pred - target)².   pred: (..., B, 1)  target: (B, 1) -> (L, dpred)
    With a leading twin axis this is exactly L(θ1) + L(θ2) [TD3, Alg. 1]: a mean over the batch, summed over
    the critics. The 1/B of the mean enters the backward pass here and nowhere else."""
    n_batch = pred.shape[-2]
    diff = pred - target                                 # (..., B, 1)
    loss = float((diff * diff).sum()) / n_batch
    dpred = diff * (2.0 / n_batch)                       # ∂L/∂pred
    return loss, dpred

# =============================================================================
# 3. Sparsity: Erdős–Rényi masks (Eq. 1), drop-and-grow (Alg. 2) and MaintainSparsity (Alg. 3); then the lab's
#    rules: uniform densities [Graesser], gradient growth [RigL] and a cosine η schedule [RigL; Graesser].
# =============================================================================
def er_probability(n_in, n_out, lam):
    """PAPER: p_l = λ_l · (n_{l-1} + n_l) / (n_{l-1} · n_l), capped at 1   [DS-TD3, Eq. 1]"""
    return min(1.0, lam * (n_in + n_out) / (n_in * n_out))

def n_present(M):
    """Connections in a 0/1 mask."""
    return int(np.count_nonzero(M))

def erdos_renyi_mask(n_in, n_out, p, rng, dtype=DTYPE):
    """M: (n_in, n_out) with each connection present independently with probability p   [DS-TD3, Eq. 1].
    The draw: one call rng.random((n_in, n_out)); a connection is present where its number is below p."""
    return (rng.random((n_in, n_out)) < p).astype(dtype)

class UnreachableSparsity(ValueError):
    """A sparsity that a network's sparse layers cannot reach while its output layer stays dense."""

def er_densities(sizes, lams, sparsity=None):
    """Connection probability of each sparse layer of one network.
    sizes: [(n_in, n_out), ...] of the whole network, the last one dense (the output layer).
    lams:  λ of each sparse layer (all layers but the last).
    sparsity=None keeps the paper's λ values. A number s instead scales all the ER probabilities by one factor f
    (each still capped at 1) so that the network's expected sparsity, counted over all its weight matrices, is s."""
    p_er = [er_probability(n_in, n_out, lam) for (n_in, n_out), lam in zip(sizes[:-1], lams)]
    if sparsity is None:
        return p_er
    n_sparse = [n_in * n_out for n_in, n_out in sizes[:-1]]
    n_dense_out = sizes[-1][0] * sizes[-1][1]
    budget = (1.0 - sparsity) * (sum(n_sparse) + n_dense_out) - n_dense_out   # weights the sparse layers may keep
    if budget <= 0 or budget > sum(n_sparse):
        highest = math.floor(1e4 * sum(n_sparse) / (sum(n_sparse) + n_dense_out)) / 1e4   # no sparse weight left
        raise UnreachableSparsity(f"sparsity {sparsity} cannot be reached with a dense output layer: at most "
                                  f"{highest}")

    def kept(f):
        return sum(min(1.0, f * p) * n for p, n in zip(p_er, n_sparse))

    lo, hi = 0.0, 1.0
    while kept(hi) < budget:                              # kept(f) grows with f, so bracket, then bisect
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if kept(mid) < budget else (lo, mid)
    return [min(1.0, hi * p) for p in p_er]

def drop_and_grow(W, M, eta, rng, grow=True, dW_dense=None):
    """One topology update of one sparse layer, in place   [DS-TD3, Alg. 2; SET].
    W, M: (n_in, n_out), contiguous. Returns (dropped, grown): flat indices, equally many (grown is empty when
    grow=False: the last update of a run drops only, as the official code does).
    Drop: the η fraction of positive weights closest to zero (the smallest positive ones) and the η fraction of
    negative weights closest to zero (the negative ones of smallest magnitude).
    Grow: as many new connections among the positions that were absent before this update: uniformly at random
    (the paper, SET), or, given dW_dense (n_in, n_out) = ∂L/∂W at every position, where |∂L/∂W| is largest [RigL].
    The draw (random growth only): one call rng.choice(free, size=n_dropped, replace=False), with free the flat
    indices of the absent positions in increasing order, np.flatnonzero(M.reshape(-1) == 0) before the drop."""
    w, mask = W.reshape(-1), M.reshape(-1)               # views of the same memory (contiguous arrays)
    active = np.flatnonzero(mask)
    # CHOICE: grown positions exclude the ones just dropped, because Alg. 2 grows "new" connections; the official
    # code can regrow them (244 of 5,197 drops in one measured update). TRAP: so `free` is taken before the drop.
    free = np.flatnonzero(mask == 0)
    # CHOICE: each sign separately, η of each (as the official code; Alg. 2 writes half the count of each);
    # w = 0 counts as positive, so an active weight stuck at exactly 0 goes first. Counts round up, so that a
    # layer with fewer than 1/η weights of a sign still adapts, and never exceed what can be regrown.
    pos, neg = active[w[active] >= 0], active[w[active] < 0]
    room = free.size if grow else active.size
    k_pos = min(math.ceil(eta * pos.size), room)
    k_neg = min(math.ceil(eta * neg.size), room - k_pos)
    drop_pos = pos[np.argpartition(w[pos], k_pos - 1)[:k_pos]] if k_pos else pos[:0]    # smallest positive
    drop_neg = neg[np.argpartition(-w[neg], k_neg - 1)[:k_neg]] if k_neg else neg[:0]   # negative, nearest 0
    dropped = np.concatenate([drop_pos, drop_neg])
    mask[dropped], w[dropped] = 0, 0
    if not grow:
        grown = dropped[:0]
    elif dW_dense is None:
        grown = rng.choice(free, size=dropped.size, replace=False)              # PAPER: random growth [SET]
    else:
        grown = grow_by_gradient(free, dropped.size, dW_dense)
    # CHOICE: grown weights start at exactly 0, so growing does not change the network's function (the drop above
    # does); the official code's start one Adam step away from 0 (|w| up to 8e-4), from its dense moments
    mask[grown], w[grown] = 1, 0
    return dropped, grown

def maintain_sparsity(W_targ, k):
    """Keep the k largest |w| of a target weight matrix and zero the rest, in place   [DS-TD3, Alg. 3, Eq. 7].
    The soft update mixes the online weights into the target, so after a topology update the target also holds
    the online layer's new connections while its dropped ones are still decaying: more than k nonzeros. Keeping
    the k largest |w| is zeroing the n_extra smallest nonzero |w|. Returns n_extra, the number zeroed.
    O(n) selection (a partition), never a full sort."""
    w = W_targ.reshape(-1)                               # (n_in·n_out,) a view: writes go to W_targ
    n_extra = int(np.count_nonzero(w)) - k
    if n_extra <= 0:                                     # already as sparse as its online layer: nothing to do
        return 0
    # Readable form:  order = np.argsort(np.abs(w)); w[order[np.count_nonzero(w == 0):][:n_extra]] = 0
    # PERF: |w| as integer keys: the bits of a float >= 0, read as an unsigned integer, order like the numbers,
    # and minus 1 (wrapping around) sends the zeros to the top, never among the smallest; a partition of these
    # keys instead of a sort of floats saved 16 % of a HalfCheetah DS-TD3 iteration (measured with python -m cProfile).
    key = np.abs(w).view(f"u{w.itemsize}") - 1          # (n_in·n_out,) uint, zeros -> largest
    kth = np.partition(key, n_extra - 1)[n_extra - 1]    # the n_extra-th smallest nonzero |w|, as a key
    smallest = np.flatnonzero(key < kth)
    ties = np.flatnonzero(key == kth)[:n_extra - smallest.size]   # exact ties at the cut: any of them will do
    w[smallest], w[ties] = 0, 0
    return n_extra

# The lab's rules (section 1): what later work put in the place of the paper's choices.
def uniform_densities(sizes, lams, sparsity=None):
    """The same number of weights as er_densities keeps, spread over the sparse layers at one density: the
    uniform allocation that Erdős–Rényi is compared with [Graesser]. ER's density grows with 1/n_in + 1/n_out,
    times the layer's λ: with the paper's λ's, Hopper's actor keeps 66 % of its 11-input first layer and 50 % of
    its hidden layer; uniform gives both 51 %."""
    p_er = er_densities(sizes, lams, sparsity)
    n_sparse = [n_in * n_out for n_in, n_out in sizes[:-1]]
    p = sum(p * n for p, n in zip(p_er, n_sparse)) / sum(n_sparse)
    return [p] * len(n_sparse)

def grow_by_gradient(free, n, dW_dense):
    """RigL's growth rule [RigL]: the n positions of `free` where |∂L/∂W| of the current batch is largest. A
    connection that would reduce the loss fastest if it existed is the one to add."""
    score = np.abs(dW_dense.reshape(-1)[free])          # (free.size,)
    return free[np.argpartition(-score, n - 1)[:n]] if n else free[:0]

def drop_fraction(iteration, hp):
    """η at this training iteration: constant (the paper), or decayed along a cosine from η to 0 at the last
    regrowing update, t_stop [RigL; Graesser]:  η_t = η/2 · (1 + cos(π·t / t_stop))."""
    t_stop = hp["stop_adapt"] * hp["total_steps"] - hp["learning_starts"]   # in iterations, as in topology_due
    if hp["drop_schedule"] == "constant" or t_stop <= 0:
        return hp["drop_fraction"]
    return hp["drop_fraction"] / 2 * (1 + math.cos(math.pi * min(iteration / t_stop, 1.0)))

# =============================================================================
# 4. Actor and twin critics: compositions of section 2, parameters in plain dicts.
#    Keys: W1 b1 W2 b2 W3 b3 (trainable), M1 M2 (masks of the sparse layers; absent for dense TD3), flat (all
#    trainable numbers in one vector, see with_flat), and for the actor act_scale, act_bias (the action range).
# =============================================================================
TRAINABLE = ("W1", "b1", "W2", "b2", "W3", "b3")  # the keys Adam, the soft update and the flush touch; M1, M2 are masks

def with_flat(net):
    """Gather the trainable arrays of net into one contiguous vector net["flat"] and make each array a view of it,
    so that a write to either is a write to both. Returns net.
    PERF: Adam, the soft update and the subnormal flush then run a dozen numpy calls over one vector instead of a
    dozen per array. Four of the six arrays are tiny (biases, the output layer): for them the calls are the cost.
    Measured: 5 % of an iteration."""
    net["flat"] = np.concatenate([net[key].reshape(-1) for key in TRAINABLE])
    offset = 0
    for key in TRAINABLE:
        size = net[key].size
        net[key] = net["flat"][offset:offset + size].reshape(net[key].shape)   # a view: no copy
        offset += size
    return net

def copy_net(net):
    """The target of a network: an independent copy of its weights (same weights, same zeros), with its own flat
    vector and no masks. A target's forward needs none, as its absent weights are 0; masks copied once would go
    stale at the first topology update, and MaintainSparsity (Alg. 3) reads the online network's instead."""
    return with_flat({key: value.copy() for key, value in net.items() if key not in ("flat", "M1", "M2")})

def init_linear(n_in, n_out, rng, n_stack=None, dtype=DTYPE):
    """Fan-in uniform init U(-1/√n_in, 1/√n_in) for W and b, as PyTorch's nn.Linear (the paper's code).
    W: (n_in, n_out) and b: (1, n_out), or with a leading (n_stack,) axis."""
    lead = () if n_stack is None else (n_stack,)
    bound = 1.0 / math.sqrt(n_in)
    W = rng.uniform(-bound, bound, size=lead + (n_in, n_out)).astype(dtype)
    b = rng.uniform(-bound, bound, size=lead + (1, n_out)).astype(dtype)
    return W, b

def init_mlp(sizes, densities, rng, n_stack=None, dtype=DTYPE):
    """A 3-layer MLP. densities: None (dense) or the connection probability of layers 1 and 2.
    Absent weights are zeroed right away: W = W_init * M."""
    net = {}
    for l, (n_in, n_out) in enumerate(sizes, start=1):
        net[f"W{l}"], net[f"b{l}"] = init_linear(n_in, n_out, rng, n_stack, dtype)
    if densities is not None:
        for l, p in enumerate(densities, start=1):
            n_in, n_out = sizes[l - 1]
            masks = [erdos_renyi_mask(n_in, n_out, p, rng, dtype) for _ in range(n_stack or 1)]
            net[f"M{l}"] = np.stack(masks) if n_stack else masks[0]          # each critic has its own masks
            net[f"W{l}"] *= net[f"M{l}"]
    return with_flat(net)

def actor_forward(actor, obs):
    """a = act_scale · tanh(MLP(obs)) + act_bias.   obs: (B, S) -> a: (B, A)
    For a symmetric action space act_scale = max_action and act_bias = 0, the paper's tanh(z)·max_action."""
    z1, lin1 = masked_linear_forward(obs, actor["W1"], actor["b1"], actor.get("M1"))  # (B, S) @ (S, H) -> (B, H)
    h1, relu1 = relu_forward(z1)
    z2, lin2 = masked_linear_forward(h1, actor["W2"], actor["b2"], actor.get("M2"))   # (B, H) @ (H, H) -> (B, H)
    h2, relu2 = relu_forward(z2)
    z3, lin3 = masked_linear_forward(h2, actor["W3"], actor["b3"])                    # (B, H) @ (H, A) -> (B, A)
    u, tanh3 = tanh_forward(z3)                                                       # (B, A) in (-1, 1)
    a = u * actor["act_scale"] + actor["act_bias"]                                    # (B, A)
    return a, (lin1, relu1, lin2, relu2, lin3, tanh3, actor["act_scale"])

def actor_backward(da, cache):
    """da = ∂L/∂a: (B, A) -> grads of W1 b1 W2 b2 W3 b3. The actor's input is data, so no dobs."""
    lin1, relu1, lin2, relu2, lin3, tanh3, act_scale = cache
    du = da * act_scale                                  # through the scaling a = scale·u + bias
    dz3 = tanh_backward(du, tanh3)                       # (B, A)
    dh2, dW3, db3 = masked_linear_backward(dz3, lin3)    # (B, H)
    dh1, dW2, db2 = masked_linear_backward(relu_backward(dh2, relu2), lin2)                 # (B, H)
    _, dW1, db1 = masked_linear_backward(relu_backward(dh1, relu1), lin1, need_dx=False)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}

def critic_forward(critic, obs, act):
    """Both critics at once: q[j] = Q_θj(s, a).   obs: (B, S)  act: (B, A) -> q: (2, B, 1)
    Passing a view of twin 0 only, {k: v[:1]}, gives Q_θ1 alone with the same code: the twin axis is then 1
    and q is (1, B, 1). The shapes below are written for both twins."""
    x = np.concatenate([obs, act], axis=1)                                              # (B, S+A)
    z1, lin1 = masked_linear_forward(x, critic["W1"], critic["b1"], critic.get("M1"))  # (B, S+A)@(2, S+A, H)->(2, B, H)
    h1, relu1 = relu_forward(z1)
    z2, lin2 = masked_linear_forward(h1, critic["W2"], critic["b2"], critic.get("M2"))  # (2, B, H)@(2, H, H)->(2, B, H)
    h2, relu2 = relu_forward(z2)
    q, lin3 = masked_linear_forward(h2, critic["W3"], critic["b3"])                     # (2, B, H)@(2, H, 1)->(2, B, 1)
    return q, (lin1, relu1, lin2, relu2, lin3, obs.shape[1])

def critic_backward(dq, cache, param_grads=True):
    """dq: (2, B, 1) -> (grads, da).
    param_grads=True (critic step): grads of every critic parameter, da = None.
    param_grads=False (actor step): grads = None and da = ∂Q/∂a: (B, A), which the actor step chains into the
    actor. Skipping what is not needed saves about half of the critic's backward products."""
    lin1, relu1, lin2, relu2, lin3, n_obs = cache
    dh2, dW3, db3 = masked_linear_backward(dq, lin3, need_dW=param_grads)                        # (2, B, H)
    dh1, dW2, db2 = masked_linear_backward(relu_backward(dh2, relu2), lin2, need_dW=param_grads)  # (2, B, H)
    dx, dW1, db1 = masked_linear_backward(relu_backward(dh1, relu1), lin1,
                                          need_dx=not param_grads, need_dW=param_grads)        # (2, B, S+A)
    if not param_grads:
        # the input [s, a] fans out to both twins, so its gradient is the sum over the twin axis
        return None, dx.sum(axis=0)[:, n_obs:]                                                 # (B, A)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}, None

def n_connections(net, layers=(1, 2, 3), twin=slice(None)):
    """The connections of a network's weight matrices (biases excluded), as the paper counts them (Eq. 8): a
    sparse layer's mask entries, a dense layer's every weight; of both critic twins, or of one (twin=0). A
    connection grown at a topology update counts from then on, though its weight starts at exactly 0."""
    return sum(n_present(net[f"M{l}"][twin]) if f"M{l}" in net else net[f"W{l}"][twin].size for l in layers)

# =============================================================================
# 5. Adam with L2 weight decay, mask-aware.
# =============================================================================
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # PyTorch's defaults, which the paper's code uses

def adam_init(net):
    """Zero first and second moments m_*, v_* for every trainable array, laid out like the network (one flat
    vector m_flat, v_flat with a view per array), and two scratch vectors, g_flat and tmp_flat, so that a step
    allocates nothing."""
    opt = {"t": 0}
    for prefix in ("m_", "v_", "g_"):
        zeros = with_flat({key: np.zeros_like(net[key]) for key in TRAINABLE})
        opt.update({prefix + key: value for key, value in zeros.items()})
    opt["tmp_flat"] = np.zeros_like(net["flat"])
    return opt

def adam_step(net, grads, opt, lr, weight_decay):
    """One Adam step on every trainable array of net, in place   [Adam, Alg. 1].
    CHOICE: masked moments. An absent weight has W = 0 and gradient 0, so g = 0 there, and m, v stay at the 0
    that topology_update leaves them at: the step moves it by exactly 0/(√0 + ε) = 0. No mask is needed here.
    Each line works on the whole network at once (flat vectors, see with_flat) and writes into an existing
    vector (out=): the step runs every iteration, and fresh temporaries would cost as much as the arithmetic."""
    beta1, beta2 = ADAM_BETAS
    opt["t"] += 1
    t = opt["t"]
    W, m, v = net["flat"], opt["m_flat"], opt["v_flat"]
    g, tmp = opt["g_flat"], opt["tmp_flat"]
    # PAPER: g = ∇L + wd·W   (L2 added to the gradient, as torch.optim.Adam(weight_decay=wd) does)
    np.multiply(W, weight_decay, out=g)
    for key, dW in grads.items():
        opt["g_" + key] += dW                          # g_W1, g_b1, ... are views of g
    # PAPER: m ← β1·m + (1-β1)·g
    m *= beta1
    m += np.multiply(g, 1 - beta1, out=tmp)
    # PAPER: v ← β2·v + (1-β2)·g²
    v *= beta2
    np.multiply(g, g, out=tmp)
    tmp *= 1 - beta2
    v += tmp
    # PAPER: W ← W - lr·m̂ / (√v̂ + ε),  m̂ = m / (1-β1^t),  v̂ = v / (1-β2^t), computed as Kingma and Ba suggest
    # [Adam, Sec. 2]: W ← W - lr_t·m / (√v + ε_t) with lr_t = lr·√(1-β2^t) / (1-β1^t) and ε_t = ε·√(1-β2^t),
    # the same update with the bias corrections in two scalars. Readable form, with m̂ and v̂ as arrays:
    #     W -= lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + ADAM_EPS)
    # PERF: two passes over the vectors fewer, and every line writes into an existing vector (out=)
    # TRAP: the scalars are plain Python floats; a numpy float64 scalar would turn float32 vectors into float64
    lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    eps_t = ADAM_EPS * math.sqrt(1 - beta2 ** t)
    np.sqrt(v, out=tmp)
    tmp += eps_t                                         # √v + ε_t
    np.divide(m, tmp, out=tmp)
    tmp *= lr_t                                          # lr_t·m / (√v + ε_t)
    W -= tmp

# =============================================================================
# 6. Replay buffer: preallocated float32 arrays, filled as a ring.
# =============================================================================
def buffer_init(capacity, n_obs, n_act, dtype=DTYPE):
    return {"obs": np.zeros((capacity, n_obs), dtype), "act": np.zeros((capacity, n_act), dtype),
            "rew": np.zeros((capacity, 1), dtype), "next_obs": np.zeros((capacity, n_obs), dtype),
            "terminated": np.zeros((capacity, 1), dtype), "ptr": 0, "size": 0, "capacity": capacity}

def buffer_add(buf, obs, act, rew, next_obs, terminated):
    """Store one transition; the oldest is overwritten once the buffer is full.
    Gymnasium returns float64 observations; they are cast to float32 here, once, on the way in."""
    i = buf["ptr"]
    buf["obs"][i], buf["act"][i], buf["rew"][i] = obs, act, rew
    buf["next_obs"][i], buf["terminated"][i] = next_obs, terminated
    buf["ptr"] = (i + 1) % buf["capacity"]
    buf["size"] = min(buf["size"] + 1, buf["capacity"])

def buffer_sample(buf, batch_size, rng):
    """B transitions drawn uniformly with replacement (as [TD3]'s code). Returns a dict of (B, ·) arrays."""
    idx = rng.integers(0, buf["size"], size=batch_size)
    return {key: buf[key][idx] for key in ("obs", "act", "rew", "next_obs", "terminated")}

# =============================================================================
# 7. The TD3 update: target, critic step, delayed actor step, soft update; the FLOPs it costs.
# =============================================================================
def td3_target(actor_targ, critic_targ, batch, gamma, sigma, c, act_lo, act_hi, rng):
    """y: (B, 1). sigma, c, act_lo, act_hi: (A,), already scaled to the action range.
    The draw: one call rng.standard_normal((B, A), dtype=next_obs.dtype), times sigma, is the noise ξ."""
    next_obs = batch["next_obs"]
    # PAPER: ã = clip(π'(s') + clip(ξ, -c, c), lo, hi),  ξ ~ N(0, σ̃²)        [TD3, Alg. 1 / Eq. 15]
    xi = np.clip(rng.standard_normal((next_obs.shape[0], sigma.size), dtype=next_obs.dtype) * sigma, -c, c)
    a_smooth = np.clip(actor_forward(actor_targ, next_obs)[0] + xi, act_lo, act_hi)         # (B, A)
    q_targ, _ = critic_forward(critic_targ, next_obs, a_smooth)                              # (2, B, 1)
    # PAPER: y = r + γ·(1 - terminated)·min(Q'1(s', ã), Q'2(s', ã))          [TD3, Alg. 1]
    # TRAP: only a true terminal state cuts the bootstrap. An episode cut by a time limit (truncated) goes on
    # in principle, so it is stored with terminated = 0 and bootstraps through the cut (sfujim/TD3#41).
    return batch["rew"] + gamma * (1 - batch["terminated"]) * q_targ.min(axis=0)            # (B, 1)

def critic_loss_grads(critic, batch, y):
    """The critic loss Σ_j mean((Q_θj(s, a) - y)²), mean Q1(s, a), and the gradients of every critic parameter."""
    q, cache = critic_forward(critic, batch["obs"], batch["act"])                            # (2, B, 1)
    loss, dq = mse_loss(q, y)
    grads, _ = critic_backward(dq, cache)
    return loss, float(q[0].mean()), grads

def critic_step(critic, opt, batch, y, lr, weight_decay):
    """One Adam step of both critics on Σ_j mean((Q_θj(s, a) - y)²). Returns (loss, mean Q1)."""
    loss, q1, grads = critic_loss_grads(critic, batch, y)
    adam_step(critic, grads, opt, lr, weight_decay)
    return loss, q1

def actor_loss_grads(actor, critic, obs):
    """The actor loss -mean(Q_θ1(s, π(s))) and the gradients of every actor parameter, through the critic
    [TD3, Alg. 1, deterministic policy gradient]. The critic is a fixed function of the action here."""
    a, actor_cache = actor_forward(actor, obs)                                               # (B, A)
    q1_only = {key: value[:1] for key, value in critic.items() if key != "flat"}   # views of twin 0: Q_θ1 alone
    q1, critic_cache = critic_forward(q1_only, obs, a)                                       # (1, B, 1)
    n_batch = obs.shape[0]
    dq1 = np.full_like(q1, -1.0 / n_batch)                # ∂(-mean Q1)/∂Q1
    _, da = critic_backward(dq1, critic_cache, param_grads=False)                           # (B, A)
    return -float(q1.mean()), actor_backward(da, actor_cache)

def actor_step(actor, critic, opt, obs, lr, weight_decay):
    """One Adam step of the actor on -mean(Q_θ1(s, π(s))); only the actor moves. Returns the loss."""
    loss, grads = actor_loss_grads(actor, critic, obs)
    adam_step(actor, grads, opt, lr, weight_decay)
    return loss

def soft_update(net, net_targ, tau):
    """PAPER: θ' ← τ·θ + (1-τ)·θ'  for every trainable array, in place   [TD3, Alg. 1; DS-TD3, Eq. 6]"""
    targ = net_targ["flat"]                              # = every key: targ[key] = (1-τ)·targ[key] + τ·net[key]
    targ *= 1 - tau
    targ += tau * net["flat"]

def iteration_flops(actor, critic, batch_size, policy_delay):
    """Training FLOPs of one iteration on average, counting what sections 4 and 7 compute   [DS-TD3, Eqs. 9-10].
    Each product with a layer of n connections costs 2·n FLOPs per sample (one multiplication and one addition
    per connection) for the forward, for the input gradient and for the weight gradient alike. Sparse layers
    count their connections only: that is the paper's metric, although numpy multiplies the masked matrices dense.
    CHOICE: every product the code performs, on its schedule; the paper counts otherwise: compare ratios to dense."""
    n_a1, n_a2, n_a3 = (n_connections(actor, [l]) for l in (1, 2, 3))
    n_c1, n_c2, n_c3 = (n_connections(critic, [l]) for l in (1, 2, 3))     # both twins
    n_q1 = n_connections(critic, twin=0)                                    # Q_θ1 alone
    critic_part = ((n_a1 + n_a2 + n_a3)                  # π'(s') in the target
                   + 2 * (n_c1 + n_c2 + n_c3)            # Q'(s', ã) and Q(s, a)
                   + (n_c1 + n_c2 + n_c3) + (n_c2 + n_c3))   # backward: every dW; dx of layers 3 and 2
    actor_part = ((n_a1 + n_a2 + n_a3)                   # π(s)
                  + 2 * n_q1                             # Q_θ1(s, π(s)) and ∂Q1/∂a through all its layers
                  + (n_a1 + n_a2 + n_a3) + (n_a2 + n_a3))    # backward: every dW; dx of layers 3 and 2
    return 2 * batch_size * (critic_part + actor_part / policy_delay)

# =============================================================================
# 8. The agent and one training iteration: the TD3 update with DS-TD3's topology and target-sparsity steps.
# =============================================================================
NETWORKS = ("actor", "critic", "actor_targ", "critic_targ", "opt_actor", "opt_critic")   # the agent's dicts

def build_agent(n_obs, n_act, act_lo, act_hi, hp, rng, dtype=DTYPE):
    """Actor, twin critics, their targets, Adam states and the scaled noise of [TD3], in one dict.
    hp: the hyperparameters (section 1), with hp["lambda_in"] the λ1 of this task. act_lo, act_hi: (A,).
    Raises UnreachableSparsity if hp["sparsity"] cannot be reached."""
    H = hp["hidden"]
    actor_sizes = [(n_obs, H), (H, H), (H, n_act)]
    critic_sizes = [(n_obs + n_act, H), (H, H), (H, 1)]
    if hp["algo"] == "td3":
        actor_p = critic_p = None
    else:
        lams = [hp["lambda_in"], hp["lambda_hidden"]]
        densities = er_densities if hp["distribution"] == "er" else uniform_densities
        actor_p = densities(actor_sizes, lams, hp["sparsity"])
        critic_p = densities(critic_sizes, lams, hp["sparsity"])
    actor = init_mlp(actor_sizes, actor_p, rng, dtype=dtype)
    critic = init_mlp(critic_sizes, critic_p, rng, n_stack=2, dtype=dtype)
    scale = ((act_hi - act_lo) / 2).astype(dtype)        # (A,) max_action for a symmetric space
    actor["act_scale"], actor["act_bias"] = scale, ((act_hi + act_lo) / 2).astype(dtype)
    return {"actor": actor, "critic": critic,
            "actor_targ": copy_net(actor), "critic_targ": copy_net(critic),   # same weights, same zeros
            "opt_actor": adam_init(actor), "opt_critic": adam_init(critic),
            "act_lo": act_lo.astype(dtype), "act_hi": act_hi.astype(dtype),
            "sigma": hp["policy_noise"] * scale, "c": hp["noise_clip"] * scale, "expl": hp["expl_noise"] * scale}

def as_stack(a):
    """View of a (n_in, n_out) matrix as a stack of one, so that the actor and the twin critics (2, n_in, n_out)
    go through the same per-matrix loop. A view, not a copy: writes go to the network."""
    return a.reshape((-1,) + a.shape[-2:])

def topology_update(net, opt, eta, rng, grow=True, dense_grads=None):
    """Drop-and-grow in every sparse layer of one network, each critic twin on its own   [DS-TD3, Alg. 2].
    dense_grads: None (random growth) or {W1, W2: ∂L/∂W at every position} for gradient growth [RigL].
    Returns {layer name: number of connections dropped (= grown, unless grow=False)}.
    The order of the draws: layer 1 before layer 2, and within a layer twin Q1 before Q2."""
    counts = {}
    for l in (1, 2):
        stacks = [as_stack(a) for a in (net[f"W{l}"], net[f"M{l}"], opt[f"m_W{l}"], opt[f"v_W{l}"])]
        dense = as_stack(dense_grads[f"W{l}"]) if dense_grads else [None] * len(stacks[0])
        for j, (W, M, m, v, dW_dense) in enumerate(zip(*stacks, dense)):
            dropped, _ = drop_and_grow(W, M, eta, rng, grow, dW_dense)
            # CHOICE (masked Adam): a dropped weight forgets its moments, so if it is regrown later it starts
            # like any new weight, at W = m = v = 0
            m.reshape(-1)[dropped] = 0
            v.reshape(-1)[dropped] = 0
            counts[f"W{l}" if len(stacks[0]) == 1 else f"Q{j + 1}.W{l}"] = dropped.size
    return counts

def without_masks(net):
    """A view of a network without its masks: the same forward (absent weights are 0), but a backward that
    leaves dW dense, ∂L/∂W at every position, which gradient growth ranks [RigL]."""
    return {key: value for key, value in net.items() if key not in ("M1", "M2")}

def target_maintain_sparsity(net, net_targ):
    """MaintainSparsity on every sparse matrix of a target   [DS-TD3, Alg. 3]. Returns the number zeroed.
    CHOICE: k is the online layer's number of connections (its mask count); the official code counts the online
    layer's nonzero weights, one fewer for every connection whose weight is exactly 0."""
    n_zeroed = 0
    for l in (1, 2):
        for M, W_targ in zip(as_stack(net[f"M{l}"]), as_stack(net_targ[f"W{l}"])):
            n_zeroed += maintain_sparsity(W_targ, n_present(M))
    return n_zeroed

def topology_due(iteration, hp):
    """Which topology update this training iteration makes: "grow" (drop-and-grow), "drop" (drop only) or None.
    Every e iterations, DS-TD3 only. CHOICE: the first update comes at iteration e (the official code: at
    iteration 2, then every e). CHOICE: regrowing updates while the env step (iteration + T₀) is at most
    stop_adapt·T; the next update drops η of each sign and grows nothing; none after. At the paper's T = 1M, that
    is the official code's last regrowing update (iteration T - T₀ - 50,000 = 925,000), and every sparse layer
    ends ~5 % sparser. A 300k-step run stops at step 285,000 (official: 250,000)."""
    if hp["algo"] != "ds-td3" or iteration % hp["update_period"] != 0:
        return None
    last_grow = hp["stop_adapt"] * hp["total_steps"] - hp["learning_starts"]   # in iterations
    if iteration <= last_grow:
        return "grow"
    if iteration - hp["update_period"] <= last_grow:
        return "drop"
    return None

FLUSH_EVERY = 100  # iterations between flushes of subnormal numbers (see flush_subnormals)

def flush_subnormals(agent):
    """Set every weight, bias and Adam moment smaller in magnitude than the smallest normal float to exactly 0.
    TRAP: x86 CPUs handle subnormal numbers (below 1.2e-38 in float32) about 100x slower than normal ones, in
    BLAS products too, and Adam with L2 weight decay drives the weights of a dead ReLU unit (gradient 0) there
    within a few thousand iterations: without this flush, a fifth of dense TD3's hidden-layer weights on Hopper
    became subnormal, and training ran 5x slower. CHOICE: the hardware's flush-to-zero mode would do this, but
    numpy cannot switch it on. The change to the network is below 1.2e-38 per weight."""
    for name in NETWORKS:
        for key in ("flat", "m_flat", "v_flat"):        # all weights, biases and moments (with_flat); not scratch
            if key in agent[name]:
                a = agent[name][key]
                np.copyto(a, 0, where=np.abs(a) < np.finfo(a.dtype).tiny)

def train_iteration(agent, buf, iteration, hp, rng):
    """One TD3 iteration [TD3, Alg. 1] with DS-TD3's topology and target-sparsity steps [DS-TD3, Alg. 1].
    The lines of the module docstring's pseudocode from "sample a batch" to "MaintainSparsity", in order.
    agent: the dict of build_agent. Returns the values to log."""
    actor, critic, actor_targ, critic_targ = agent["actor"], agent["critic"], agent["actor_targ"], agent["critic_targ"]
    batch = buffer_sample(buf, hp["batch_size"], rng)
    y = td3_target(actor_targ, critic_targ, batch, hp["gamma"], agent["sigma"], agent["c"],
                   agent["act_lo"], agent["act_hi"], rng)
    loss_q, q1 = critic_step(critic, agent["opt_critic"], batch, y, hp["lr"], hp["weight_decay"])
    out = {"loss_q": loss_q, "q1": q1}
    adapt, gradient = topology_due(iteration, hp), hp["grow"] == "gradient"
    eta = drop_fraction(iteration, hp) if adapt else None
    if adapt:                                            # right after the critic step [DS-TD3, Alg. 1]
        dense = critic_loss_grads(without_masks(critic), batch, y)[2] if gradient else None
        out["topology_critic"] = topology_update(critic, agent["opt_critic"], eta, rng, adapt == "grow", dense)
    if iteration % hp["policy_delay"] == 0:
        out["loss_pi"] = actor_step(actor, critic, agent["opt_actor"], batch["obs"], hp["lr"], hp["weight_decay"])
        if adapt:                                        # e is a multiple of d (check_args): never missed
            dense = actor_loss_grads(without_masks(actor), critic, batch["obs"])[1] if gradient else None
            out["topology_actor"] = topology_update(actor, agent["opt_actor"], eta, rng, adapt == "grow", dense)
        soft_update(actor, actor_targ, hp["tau"])
        soft_update(critic, critic_targ, hp["tau"])
        if hp["algo"] == "ds-td3":                       # Static-TD3's target zeros stay zeros by themselves
            out["target_zeroed"] = (target_maintain_sparsity(actor, actor_targ)
                                    + target_maintain_sparsity(critic, critic_targ))
    if iteration % FLUSH_EVERY == 0:
        flush_subnormals(agent)
    return out

# =============================================================================
# 9. Evaluation: deterministic returns, as in [TD3]'s code.
# =============================================================================
def evaluate(actor, env, n_episodes, seed):
    """Undiscounted returns of the deterministic policy π(s) (no exploration noise) over n_episodes.
    The eval env is reseeded with the same seed at every evaluation, so each evaluation sees the same start
    states, and the training env is never touched. Returns the array of episode returns."""
    returns = np.zeros(n_episodes)
    obs, _ = env.reset(seed=seed)
    for episode in range(n_episodes):
        if episode > 0:
            obs, _ = env.reset()
        done = False
        while not done:
            act = actor_forward(actor, obs[None].astype(actor["W1"].dtype))[0][0]           # (A,)
            obs, rew, terminated, truncated, _ = env.step(act)
            returns[episode] += rew
            done = terminated or truncated
    return returns

# =============================================================================
# 10. The training loop: the module docstring's pseudocode, line by line.
# =============================================================================
def explore(agent, obs, warm_up, rng):
    """The action taken in the training env at one step   [TD3, Alg. 1].   obs: (S,) -> act: (A,)"""
    if warm_up:
        # CHOICE: uniform warm-up actions from our one seeded RNG, not action_space.sample(), so that the RNG
        # and the seeded env resets are the only sources of randomness
        return rng.uniform(agent["act_lo"], agent["act_hi"]).astype(DTYPE)
    # PAPER: a = clip(π(s) + N(0, (0.1·max_a)²), lo, hi)
    act = actor_forward(agent["actor"], obs[None].astype(DTYPE))[0][0]          # (1, S) -> (1, A) -> (A,)
    noise = rng.standard_normal(act.size, dtype=DTYPE) * agent["expl"]
    return np.clip(act + noise, agent["act_lo"], agent["act_hi"])

def eval_due(step, hp):
    """Evaluate every eval_every steps, and after the last step."""
    return step % hp["eval_every"] == 0 or step == hp["total_steps"]

def train(agent, env, eval_env, buf, hp, rng, loop):
    """DS-TD3's training loop [DS-TD3, Alg. 1]: the module docstring's pseudocode, line by line.
    loop: {"step": steps done so far, "obs": the current observation}; a fresh run starts at step 0 with the
    first observation of a seeded reset, and a resumed run where its checkpoint left off.
    How Part II watches the run: this is a Python generator function. After each step (and its training
    iteration) it yields (step, log), and after each evaluation (step, {"eval_returns": returns}). The caller's
    for-loop body runs at each yield: it prints, writes files, saves checkpoints, and ends the run by leaving the
    loop, before an evaluation if it must (a NaN loss). The method stays here, whole: the caller can neither see
    into a step nor change one."""
    T0 = hp["learning_starts"]
    for t in range(loop["step"] + 1, hp["total_steps"] + 1):
        loop["step"] = t
        obs = loop["obs"]
        act = explore(agent, obs, t <= T0, rng)
        next_obs, rew, terminated, truncated, _ = env.step(act)
        buffer_add(buf, obs, act, rew, next_obs, terminated)          # TRAP: terminated only, never truncated
        loop["obs"] = env.reset()[0] if terminated or truncated else next_obs
        log = {}
        # after a resume without the saved buffer, training waits until the buffer holds one batch again
        if t > T0 and buf["size"] >= hp["batch_size"]:
            log = train_iteration(agent, buf, t - T0, hp, rng)
        yield t, log
        if eval_due(t, hp):
            yield t, {"eval_returns": evaluate(agent["actor"], eval_env, hp["eval_episodes"], hp["seed"] + 100)}

# #############################################################################################################
#                                       PART II — RUNNING IT
# What a user needs around the method; nothing below changes what Part I computes. Errors have one boundary,
# guarded (section 17): bad input raises RunError, one line and exit code 2; a failing disk an OSError, one line,
# exit 1. results/report.py, beside this file, imports it and shares that boundary; course/course.py imports it.
# #############################################################################################################
import argparse
import contextlib
import csv
import io
import itertools
import json
import platform
import re
import shlex
import shutil
import sys
import time
import warnings
import zipfile
from importlib import metadata

# =============================================================================
# 11. The command line: HYPERPARAMETERS (section 1), and RUN_FLAGS, the flags of running a run.
# =============================================================================
# A flag of running a run: --help group, type, default, valid values (None: any), the mode reading it, placeholder
RunFlag = collections.namedtuple("RunFlag", "group type default valid mode metavar meaning")
RUN_FLAGS = {
    "env": RunFlag("experiment", str, "Hopper-v4", None, "train", "ID", "a Gymnasium task with bounded Box actions"),
    "runs_dir": RunFlag("logs", str, "runs", None, "train", "DIR", "a folder per run (Windows: run.lock in it)"),
    "log_every": RunFlag("logs", int, 2000, "[1, inf)", "train", "N", "print a progress line every this many steps"),
    "save_buffer": RunFlag("logs", bool, False, None, "train", None,
                           "checkpoints hold the replay buffer: --resume of a MuJoCo task is exact (110 MB/1M steps)"),
    "resume": RunFlag("modes", str, None, None, "resume", "RUN_DIR", "continue RUN_DIR's run, with its own settings"),
    "watch": RunFlag("modes", str, None, None, "watch", "RUN_DIR",
                     "rerun the saved policy's last evaluation, print its returns, write RUN_DIR/policy.gif"),
}
GROUP_TITLES = {"experiment": "experiment", "TD3": "TD3 [TD3, Alg. 1]", "DS-TD3": "DS-TD3 [DS-TD3, Alg. 1-3]",
                "lab": "the lab: later work's choices, not the paper's", "logs": "evaluation, logging and run folders",
                "modes": "other modes, each with no other flag"}

class RunError(Exception):
    """What the program cannot go on with: RunError(message) or RunError(message, exit code). guarded prints the
    message as one line and exits with the code: 2, bad input, unless another is given."""

class Parser(argparse.ArgumentParser):
    def error(self, message):                            # one line, instead of argparse's usage block and line
        raise RunError(message)

    def print_help(self, file=None):                     # through say: to an ASCII or a closed stdout too
        say(self.format_help().rstrip("\n"), file)

def flag_of(name):
    """The flag of a setting: total_steps -> --total-steps."""
    return "--" + name.replace("_", "-")

def flag_help(name, default, meaning):
    """A flag's line in --help: its meaning, its default, and for λ1 the paper's value for each task."""
    if name == "lambda_in":
        tasks = ", ".join(f"{task} {lam:g}" for task, lam in LAMBDA_IN.items())
        meaning = f"{meaning}: {tasks}; other tasks {DEFAULT_LAMBDA_IN:g}"
    if default is None or default is False:
        return meaning
    return f"{meaning} (default: {default})"

def add_flag(group, name, kind, default, valid, metavar, meaning):
    """One flag of the command line, in its --help group."""
    flag = flag_of(name)
    text = flag_help(name, default, meaning)
    if kind is bool:
        group.add_argument(flag, action="store_true", help=text)
    elif type(valid) is tuple:
        group.add_argument(flag, type=kind, default=default, choices=valid, help=text)
    else:
        group.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)

def make_parser():
    """The command line: a flag per row of HYPERPARAMETERS and RUN_FLAGS, in the groups of GROUP_TITLES."""
    parser = Parser(description="DS-TD3 (dynamic sparse TD3) in numpy; the module docstring explains it.",
                    allow_abbrev=False)
    # TRAP: argparse before Python 3.13 takes -1e-3 or -inf for a flag ("expected one argument"), not a value
    parser._negative_number_matcher = re.compile(r"-\.?\d|-inf|-nan", re.IGNORECASE)
    groups = {}
    for key, title in GROUP_TITLES.items():
        groups[key] = parser.add_argument_group(title)
    for name, row in HYPERPARAMETERS.items():
        add_flag(groups[row.group], name, row.type, row.default, row.valid, None, row.meaning)
    for name, row in RUN_FLAGS.items():
        add_flag(groups[row.group], name, row.type, row.default, row.valid, row.metavar, row.meaning)
    return parser

def given_flags(argv):
    """The settings named on the command line (--a-b=1 names a_b). A flag given twice is an error: argparse
    would keep the last silently."""
    names = [arg[2:].split("=")[0].replace("-", "_") for arg in argv if arg.startswith("--") and len(arg) > 2]
    twice = sorted(name for name in set(names) if names.count(name) > 1)
    if twice:
        raise RunError(f"{', '.join(map(flag_of, twice))} given more than once; give each once")
    return set(names)

def flags_read_in(mode):
    """The settings that a mode reads: training reads every hyperparameter."""
    names = {name for name, row in RUN_FLAGS.items() if row.mode == mode}
    if mode == "train":
        names |= set(HYPERPARAMETERS)
    return names

def check_range(name, args, interval):
    """Stop with one line unless the flag's value lies in its interval, as in maths: "(0, 1]", "(learning_starts,
    inf)" (an end may name a setting). An int must be at most 2**53, a float lie in it as the float32 (DTYPE)
    that training uses: --lr 1e-50 is 0 in float32, not in (0, inf)."""
    value = getattr(args, name)
    flag = flag_of(name)
    ends = []                                            # the values of its two ends
    shown = interval                                     # the interval as the message shows it
    for end in [end.strip() for end in interval[1:-1].split(",")]:
        if hasattr(args, end):                           # the end names another setting: its value
            ends.append(getattr(args, end))
            shown = shown.replace(end, f"{flag_of(end)} = {getattr(args, end)}")
        else:
            ends.append(float(end))                      # a number, or inf
    lo = ends[0]
    hi = ends[1]

    def inside(x):
        above = x > lo or (interval[0] == "[" and x == lo)
        below = x < hi or (interval[-1] == "]" and x == hi)
        return above and below

    if not inside(value):
        raise RunError(f"{flag} must be in {shown}; not {value}")
    if type(value) is int and value > 2 ** 53:          # float64's exact integers: the schedule multiplies T
        raise RunError(f"{flag} must be at most 2**53; not {value}")
    if type(value) is float:
        with np.errstate(over="ignore"):
            used = float(DTYPE(value))                   # 1e300 becomes inf, 1e-50 becomes 0
        if not math.isfinite(used) or not inside(used):
            raise RunError(f"{flag} is {value}, which training's float32 rounds to {used:g}: give a value in {shown}")

def check_args(args, given):
    """Reject bad input before anything is built or written, in this order: flags the mode would ignore, values
    outside their range, and settings that would never train or never adapt. Returns the mode the flags ask for:
    train, resume or watch. A resume and --watch read no other flag, so their checks pass on the defaults."""
    mode = "train"
    for name in ("watch", "resume"):                     # --watch beside --resume is refused next
        if getattr(args, name) is not None:
            mode = name
    ignored = sorted(given - flags_read_in(mode))       # training reads every flag but --resume and --watch
    if ignored:
        raise RunError(f"{', '.join(map(flag_of, ignored))} cannot be used with --{mode}, which goes on with the "
                       "settings that the run started with")
    for name, row in {**HYPERPARAMETERS, **RUN_FLAGS}.items():
        if type(row.valid) is str and getattr(args, name) is not None:
            check_range(name, args, row.valid)
    unread = [flag_of(name) for name in sorted(given & set(HYPERPARAMETERS))
              if args.algo not in HYPERPARAMETERS[name].read_by]
    if unread:
        raise RunError(f"{', '.join(unread)} cannot be used with --algo {args.algo}, which does not read it")
    if args.algo == "ds-td3":
        if args.update_period % args.policy_delay != 0:
            raise RunError("--update-period (e) must be a multiple of --policy-delay (d)")
        first_update = args.learning_starts + args.update_period
        if first_update > args.total_steps or topology_due(args.update_period, vars(args)) != "grow":
            raise RunError(f"ds-td3 would regrow no connection: its first topology update (step {first_update:,}) "
                           f"comes after adaptation stops (step {args.stop_adapt * args.total_steps:,.0f}) or the "
                           "run ends; use --algo static-td3")
    return mode

def hyperparameters(args):
    """The `hp` dict of Part I: the parsed flags as a plain dict, with λ1 resolved for the task."""
    hp = dict(vars(args))
    if hp["lambda_in"] is None:
        hp["lambda_in"] = LAMBDA_IN.get(args.env.split("-")[0], DEFAULT_LAMBDA_IN)
    return hp

# =============================================================================
# 12. Environments, and the versions that a run records.
# =============================================================================
def make_env(env_id, render_mode=None):
    """gymnasium.make, with a one-line error where the task cannot be made here or does not suit TD3."""
    import gymnasium as gym                              # here: --help needs no gymnasium
    # CHOICE: the v4 tasks have the paper's v3 dynamics; Gymnasium would remind us on every make that v5 exists
    warnings.filterwarnings("ignore", message=".*is out of date. You should consider upgrading")
    try:
        env = gym.make(env_id, render_mode=render_mode)
    except (gym.error.Error, ImportError, ValueError) as err:   # unknown id, MuJoCo or Box2D missing, ...
        cause = err
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:                            # Ctrl-C during an import, which became an ImportError
            raise KeyboardInterrupt from None
        reason = " ".join(str(err).split()).rstrip(".")
        raise RunError(f"cannot make {env_id}: {reason}; the paper's tasks here are HalfCheetah-v4, Hopper-v4, "
                       "Walker2d-v4, Ant-v5 and Humanoid-v4 (README)") from None
    space = env.action_space
    shape = env.observation_space.shape or ()
    bounded = isinstance(space, gym.spaces.Box) and np.isfinite([space.low, space.high]).all()
    if not bounded or len(shape) != 1:
        raise RunError(f"{env_id} has a {type(space).__name__} action space and observations of shape {shape}; "
                       "TD3 needs a bounded continuous (Box) action space, and this MLP a vector observation")
    return env

def versions():
    """What it takes to repeat a run to the digit besides its command. TRAP: OpenBLAS's CPU kernels round
    differently, and RL amplifies the difference (results/README.md): set OPENBLAS_CORETYPE to repeat a run
    (blas_kernel None: OpenBLAS's own pick for the CPU)."""
    found = {"python": platform.python_version(), "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
             "blas_kernel": os.environ.get("OPENBLAS_CORETYPE")}
    for package in ("numpy", "gymnasium", "mujoco"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found

# =============================================================================
# 13. What the logs measure besides returns: the sparsity of a network and of its layers.
# =============================================================================
def sparsity_of(net):
    """The fraction of a network's possible connections that are absent (W1 W2 W3, biases excluded)."""
    return 1.0 - n_connections(net) / sum(net[f"W{l}"].size for l in (1, 2, 3))

def sparse_layers(net):
    """{name: mask} of a network's sparse layers, named as topology_update names them: W1, W2 for the actor,
    Q1.W1, Q2.W1, Q1.W2, Q2.W2 for the critics, each twin on its own. Empty for dense TD3."""
    layers = {}
    for l in (1, 2):
        if f"M{l}" in net:
            stack = as_stack(net[f"M{l}"])
            for j, M in enumerate(stack):
                name = f"W{l}" if len(stack) == 1 else f"Q{j + 1}.W{l}"
                layers[name] = M
    return layers

# =============================================================================
# 14. Run folders and logs. A run folder holds config.json (the command, every setting, the versions and the
#     counts of the run header), eval.csv (a row per evaluation), topology.csv (the topology moving) and
#     checkpoint.npz. The checkpoint holds the rows of both CSV files, which are written whole from it: a resumed
#     run rewrites them exactly where a crash left them behind, and stops where they hold what it did not write.
#
#   The logged metrics (key=value lines, easy to grep):
#   train_sps      steps per second of training (after the warm-up) in this process; time_left, in hours, from it
#   loss_q         critic loss Σ_j mean((Q_j(s,a) - y)²) of the last iteration
#   loss_pi        actor loss -mean(Q_1(s, π(s))) of the last actor step
#   q1             mean Q_1(s, a) over the last batch, the critic's value estimate
#   sparsity_*     fraction of the possible connections that are absent, over all weight matrices of the network
#   densities      (run header) the fraction of connections present in each sparse layer, as Eq. 1 placed them
#   return_mean    mean undiscounted return of the evaluation episodes (no exploration noise)
#   connections    connections of actor + both critics (n_connections), and of dense TD3 [DS-TD3, Eq. 8]
#   flops          training FLOPs so far, and their ratio to dense TD3 with the same settings [DS-TD3, Eqs. 9-10]
#   topology.csv   at each topology update, a row per sparse layer: the connections dropped, grown and there after
#                  (input "all"); at each evaluation, a row per input of each input layer: its connections
# =============================================================================
CHECKPOINT = "checkpoint.npz"
EVAL_FIELDS = ["step", "return_mean", "return_std", "episodes", "connections", "connections_dense",
               "sparsity_actor", "sparsity_critic", "flops", "flops_vs_dense"]
TOPOLOGY_FIELDS = ["step", "layer", "input", "dropped", "grown", "connections"]

def say(line, stream=None):
    """Print one line to stdout (or stream) and flush it. A stream that is not there (None: a closed stdout,
    `>&-`) is skipped, and a character that its encoding cannot show (₀ in cp1252) is escaped."""
    stream = stream or sys.stdout
    if stream is None:
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(line.encode(encoding, "backslashreplace").decode(encoding), file=stream, flush=True)

def pasteable(command):
    """A command for the user to paste, with POSIX quoting; or, where stdout's encoding cannot show it, a
    sentence that says so (an escaped path would be another path)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        command.encode(encoding)
    except UnicodeEncodeError:
        return f"(a command that this terminal's {encoding} cannot show: it is the command of config.json)"
    return command

def write_atomically(path, write, binary=False):
    """The one way a run file is written: write(f) to a temporary file of this process's own, then rename it over
    path. A full disk or Ctrl-C at any moment leaves the old file or the new one, never half of one, and removes
    the temporary file (only a process killed outright, as by SIGKILL, can leave one behind)."""
    path = os.path.realpath(path)                        # a symlinked file: its target is rewritten, the link kept
    tmp = f"{path}.{os.getpid()}.tmp"                   # two processes never share one temporary file
    how = {"mode": "wb"} if binary else {"mode": "w", "newline": "", "encoding": "utf-8"}
    try:
        with open(tmp, **how) as f:
            write(f)
        os.replace(tmp, path)
    except OSError as err:
        raise OSError(err.errno, err.strerror, path) from None   # guarded's one line names the file
    finally:                                             # whatever ended the write: a full disk, Ctrl-C, a bug
        with contextlib.suppress(OSError):
            os.remove(tmp)                               # (after os.replace, it is gone already)

def new_run_dir(args):
    """runs/<env>__<algo>__s<seed>__<time>/, made exclusively: a name already taken gets -2, -3, ..."""
    env = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.env)   # an id like ALE/Pong-v5 too
    base = os.path.join(args.runs_dir, f"{env}__{args.algo}__s{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}")
    for path in itertools.chain([base], (f"{base}-{n}" for n in itertools.count(2))):
        with contextlib.suppress(FileExistsError):
            os.makedirs(path)                            # atomic: two runs started in one second get two folders
            return path

def hold_run_dir(path):
    """Hold a run folder, so that no second process (a --resume of a run still going) writes it: the operating
    system's lock, on the folder itself (Windows: on run.lock, not deletable while open), which ends with the
    process. The holder removes what a process killed during a write left. Returns the lock's file descriptor."""
    if not os.path.isdir(path):
        raise RunError(f"{path} is not a run folder (--resume and --watch take the run's folder)")
    if os.name == "nt":                                  # Windows
        lock = os.open(os.path.join(path, "run.lock"), os.O_RDWR | os.O_CREAT)
    else:                                                # Linux, macOS
        lock = os.open(path, os.O_RDONLY)
    try:
        if os.name == "nt":
            import msvcrt
            msvcrt.locking(lock, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        raise RunError(f"{path} is being written by another process; let it end first") from None
    for name in sorted(os.listdir(path)):
        if name.endswith(".tmp"):                        # only the folder's holder writes there: that one is dead
            os.remove(os.path.join(path, name))
            say(f"removed {os.path.join(path, name)}, which a process that ended during a write left behind")
    return lock

def describe_run(agent, hp, args, argv):
    """The counts of this run and of dense TD3 with the same settings, and config.json, which the run header
    prints, with each sparse layer's density (1.0 where Eq. 1 reaches 1). Stops where a layer would be left
    without connections: at the start, or after ds-td3's last, drop-only topology update (η of each sign)."""
    actor_critic = (agent["actor"], agent["critic"])
    dense = (without_masks(agent["actor"]), without_masks(agent["critic"]))
    densities = {}
    for name in ("actor", "critic"):
        for layer, M in sparse_layers(agent[name]).items():   # each critic twin has masks of its own
            n = n_present(M)
            densities[f"{name}.{layer}"] = float(f"{n / M.size:.4g}")   # 4 significant digits
            lost = 0
            if hp["algo"] == "ds-td3":
                lost = min(n, math.ceil(hp["drop_fraction"] * n) + 1)
            if n - lost < 1:
                raise RunError(f"{name}.{layer} would be left without connections (it has {n}, {lost} may be "
                               "dropped): a larger --hidden, --lambda-in or --lambda-hidden, or a lower --sparsity")
    config = {"command": "python dst_td3.py " + " ".join(map(shlex.quote, argv)),
              "args": {key: value for key, value in vars(args).items() if key in flags_read_in("train")},
              "versions": versions(),
              "densities": densities,
              "connections": {"sparse": sum(map(n_connections, actor_critic)),   # the actor and both critics
                              "dense": sum(map(n_connections, dense))}}
    return {"config": config,
            "flops_iter": iteration_flops(*actor_critic, hp["batch_size"], hp["policy_delay"]),
            "flops_iter_dense": iteration_flops(*dense, hp["batch_size"], hp["policy_delay"])}

def evaluation_row(returns, agent, hp, loop, run):
    """The row of eval.csv of one evaluation, as text."""
    ratio = run["flops_iter"] / run["flops_iter_dense"]  # before the first iteration: the next one's
    if loop["flops_dense"]:
        ratio = loop["flops"] / loop["flops_dense"]
    row = {"step": loop["step"], "return_mean": f"{returns.mean():.2f}", "return_std": f"{returns.std():.2f}",
           "episodes": hp["eval_episodes"],
           "connections": n_connections(agent["actor"]) + n_connections(agent["critic"]),
           "connections_dense": run["config"]["connections"]["dense"],
           "sparsity_actor": f"{sparsity_of(agent['actor']):.4f}",
           "sparsity_critic": f"{sparsity_of(agent['critic']):.4f}",
           "flops": f"{loop['flops']:.4e}",
           "flops_vs_dense": f"{ratio:.4f}"}
    return [str(row[field]) for field in EVAL_FIELDS]

def input_rows(step, agent):
    """topology.csv's rows at an evaluation: the connections of each input of every sparse input layer."""
    rows = []
    for name in ("actor", "critic"):
        for layer, M in sparse_layers(agent[name]).items():
            if layer.endswith("W1"):
                for i, count in enumerate(M.sum(axis=1)):   # M: (inputs, H)
                    rows.append([step, f"{name}.{layer}", i, "", "", int(count)])
    return rows

def update_rows(step, name, dropped, net, grew):
    """topology.csv's rows of one network's topology update: per sparse layer the connections dropped, grown
    (as many, or none at the last, drop-only update) and there after. dropped: topology_update's counts."""
    rows = []
    for layer, M in sparse_layers(net).items():
        grown = dropped[layer] if grew else 0
        rows.append([step, f"{name}.{layer}", "all", dropped[layer], grown, n_present(M)])
    return rows

def record_step(info, step, agent, hp, loop, run, clock):
    """What Part II does after every step: count FLOPs (fewer after a drop-only topology update), time training,
    note topology updates, and stop on a NaN loss, or before an evaluation on a NaN weight (an overflowing update
    makes some): never act, evaluate or save with a broken network."""
    if "loss_q" in info:
        loop["flops"] += run["flops_iter"]
        loop["flops_dense"] += run["flops_iter_dense"]
        clock.setdefault("train_start", time.perf_counter())
        clock.setdefault("train_start_step", step - 1)
    clock["log"].update(info)
    for name in ("critic", "actor"):                     # in the order of the iteration
        if f"topology_{name}" in info:                   # a topology update: never a per-step cost
            grew = topology_due(step - hp["learning_starts"], hp) == "grow"
            loop["topology.csv"] += update_rows(step, name, info[f"topology_{name}"], agent[name], grew)
    if "topology_actor" in info:
        run["flops_iter"] = iteration_flops(agent["actor"], agent["critic"], hp["batch_size"], hp["policy_delay"])
    broken = [key for key in ("loss_q", "loss_pi") if key in info and not math.isfinite(info[key])]
    if eval_due(step, hp):                               # an evaluation comes next: the weights too
        broken += [name for name in NETWORKS[:4] if not np.isfinite(agent[name]["flat"]).all()]
    if broken:
        raise RunError(f"training stopped at step {step}: {', '.join(broken)} not finite (NaN or inf); the last good "
                       f"checkpoint is {os.path.join(run['dir'], CHECKPOINT)}", 1)

def print_progress(step, T, loop, agent, clock):
    """One key=value progress line: the speed of training (after the warm-up) and the time left."""
    speed = " time_left=after the warm-up"
    if "train_start" in clock:
        train_sps = (step - clock["train_start_step"]) / (time.perf_counter() - clock["train_start"])
        speed = f" train_sps={train_sps:.0f} time_left={(T - step) / train_sps / 3600:.2f}h"
    losses = "".join(f" {key}={clock['log'][key]:.4g}" for key in ("loss_q", "loss_pi", "q1") if key in clock["log"])
    say(f"step={step}/{T} ({step / T:.1%}){speed} last_eval={loop['last_eval']:.1f}{losses} "
        f"sparsity_actor={sparsity_of(agent['actor']):.3f} sparsity_critic={sparsity_of(agent['critic']):.3f}")

# =============================================================================
# 15. Checkpoints and resume: arrays, and two JSON strings, in one .npz (no pickle).
# =============================================================================
BUFFER_KEYS = ("obs", "act", "rew", "next_obs", "terminated")
Checkpoint = collections.namedtuple("Checkpoint", "path arrays config progress")

def env_state(env, saved=None):
    """The training env's state (saved=None), or restore saved into it: its RNG (used by reset), the
    time-limit counter, and MuJoCo's whole integration state, the solver's warm start included, so that the env
    continues mid-episode exactly. A task without MuJoCo starts a new episode instead (returns False)."""
    u = env.unwrapped
    if saved is None:
        saved = {"rng": u.np_random.bit_generator.state, "elapsed_steps": env.get_wrapper_attr("_elapsed_steps")}
        if hasattr(u, "data"):
            import mujoco
            sim = np.empty(mujoco.mj_stateSize(u.model, mujoco.mjtState.mjSTATE_INTEGRATION))
            mujoco.mj_getState(u.model, u.data, sim, mujoco.mjtState.mjSTATE_INTEGRATION)
            saved["mujoco"] = sim.tolist()               # JSON keeps every bit of a float64
        return saved
    u.np_random.bit_generator.state = saved["rng"]
    env.set_wrapper_attr("_elapsed_steps", saved["elapsed_steps"])
    if "mujoco" in saved:
        import mujoco
        mujoco.mj_setState(u.model, u.data, np.array(saved["mujoco"]), mujoco.mjtState.mjSTATE_INTEGRATION)
    return "mujoco" in saved

def save_run(run, agent, buf, rng, env, loop):
    """Everything a run needs to continue, in checkpoint.npz: its arrays, and as JSON the state of the loop (the
    rows of eval.csv and topology.csv too), of the RNG and of the env. Then config.json and the CSV files from what
    the checkpoint holds."""
    arrays = checkpoint_arrays(agent, buf, run["config"]["args"]["save_buffer"])
    progress = {"loop": {**loop, "obs": loop["obs"].tolist()},
                "rng": rng.bit_generator.state,
                "env": env_state(env),
                "buffer": {"ptr": buf["ptr"], "size": buf["size"]},
                "adam_t": [agent["opt_actor"]["t"], agent["opt_critic"]["t"]]}
    arrays["progress"] = np.array(json.dumps(progress))
    arrays["config"] = np.array(json.dumps(run["config"]))
    write_atomically(os.path.join(run["dir"], CHECKPOINT), lambda f: np.savez(f, **arrays), binary=True)
    for name, write in text_files(run, loop).items():
        write_atomically(os.path.join(run["dir"], name), write)

def checkpoint_arrays(agent, buf, with_buffer):
    """{name/key: array} of the arrays a checkpoint holds, each the run's own (a write to it is a write to the run):
    the networks and Adam (not its scratch vectors g_* and tmp_flat, which carry no state, nor a flat vector, which
    holds its arrays' numbers: with_flat), and with_buffer (--save-buffer) the replay buffer's filled part."""
    arrays = {}
    for name in NETWORKS:
        for key, value in agent[name].items():
            if isinstance(value, np.ndarray) and not key.startswith("g_") and not key.endswith("flat"):
                arrays[f"{name}/{key}"] = value
    if with_buffer:
        for key in BUFFER_KEYS:
            arrays[f"buffer/{key}"] = buf[key][:buf["size"]]
    return arrays

def text_files(run, loop):
    """{name: write(f)} of a run folder's text files, each written whole from what the checkpoint holds."""
    return {"config.json": lambda f: json.dump(run["config"], f, indent=2),
            "eval.csv": lambda f: csv.writer(f).writerows(loop["eval.csv"]),
            "topology.csv": lambda f: csv.writer(f).writerows(loop["topology.csv"])}

def read_text(path):
    """The one way a run's text file is read. Bytes that are not UTF-8 are bad content, a line that names the file;
    a BOM (a spreadsheet's save) is none. An operating system's read error stays an OSError (exit 1)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RunError(f"{path} is not UTF-8 text (byte {err.start}): not a file that dst_td3.py wrote") from None

def read_json(text, where):
    """JSON text of a run's file, or a line that names the file."""
    try:
        return json.loads(text)
    except ValueError as err:
        raise RunError(f"{where} is not JSON ({err}): not a file that dst_td3.py wrote") from None

def parsed(name, text, where):
    """A run file's text as its readers compare it: a CSV file's rows, or config.json's JSON value as one row."""
    if name.endswith(".json"):
        return [read_json(text, where)]
    return list(csv.reader(io.StringIO(text, newline="")))

def check_resume_loses_nothing(run, loop):
    """A resume rewrites the folder's text files from its checkpoint, so first: each must hold what the checkpoint
    writes, or its first rows (a crash between writes), as parsed (line endings, a BOM, indentation are no content)."""
    for name, write in text_files(run, loop).items():
        path = os.path.join(run["dir"], name)
        if not os.path.exists(path):
            continue
        expected = io.StringIO(newline="")
        write(expected)
        found = parsed(name, read_text(path), path)
        wanted = parsed(name, expected.getvalue(), path)
        for line, row in enumerate(found, start=1):
            if line > len(wanted) or row != wanted[line - 1]:
                raise RunError(f"cannot resume: {path} holds what its checkpoint did not write, in row {line} (a "
                               "row or column added since, or another run's); move it aside, and it is written anew")

def load_checkpoint(run_dir):
    """The Checkpoint (path, arrays, config, progress) of a run folder, or one line that says why not: it is missing,
    truncated, not a checkpoint, or another version's. An operating system's read error stays an OSError."""
    path = os.path.join(run_dir, CHECKPOINT)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise RunError(f"{run_dir} has no {CHECKPOINT}: not a run folder, or its first save never ended") from None
    except (ValueError, EOFError, TypeError, zipfile.BadZipFile) as err:   # TypeError: a .npy holds one array
        raise RunError(f"cannot read the checkpoint {path}: it is not a whole .npz file ({err})") from None
    another = "so another version of dst_td3.py wrote it, or another program"
    for key in ("config", "progress"):
        if key not in arrays:
            raise RunError(f"cannot read the checkpoint {path}: it has no '{key}', {another}")
    config = read_json(str(arrays["config"]), f"the config in {path}")
    if type(config) is not dict or type(config.get("args")) is not dict:
        raise RunError(f"cannot read the checkpoint {path}: its config has no 'args', {another}")
    return Checkpoint(path, arrays, config, read_json(str(arrays["progress"]), f"the progress in {path}"))

def saved_args(config, where, parser):
    """The settings a run started with, checked as the command line (parser, make_parser's) checks them, by passing
    them through it as flags: a setting of another type or out of its range is named in one line. Today's default
    where an older version saved none; a setting that today's program does not have is left out."""
    argv = []
    for key, value in config["args"].items():
        if key in flags_read_in("train") and value is not None and value is not False:
            argv.append(flag_of(key))
            if value is not True:
                argv.append(str(value))                  # str(float) gives back the same float
    try:
        args = parser.parse_args(argv)
        check_args(args, set())
    except RunError as err:
        raise RunError(f"cannot read the settings in {where}: {err.args[0]}") from None
    return args

def resume_from(checkpoint, agent, buf, rng, env, loop):
    """Load a checkpoint into the run that its config.json built: networks, buffer, RNG, loop and env, each array
    of the shape of the run's own, each field of the progress of the type that this version writes."""
    progress = checkpoint.progress
    with_buffer = "buffer/obs" in checkpoint.arrays       # saved with --save-buffer
    try:
        if with_buffer:                                  # first: the size shapes the arrays checked next
            buf.update(ptr=progress["buffer"]["ptr"], size=len(checkpoint.arrays["buffer/obs"]))
        for key, value in checkpoint_arrays(agent, buf, with_buffer).items():
            saved = checkpoint.arrays.get(key, np.zeros(0))
            if saved.shape != value.shape:               # its config built the agent: a shape differs elsewhere
                raise RunError(f"cannot read the checkpoint {checkpoint.path}: it has no {key} of shape "
                               f"{value.shape}, so another task's or another version's")
            value[...] = saved
        agent["opt_actor"]["t"] = progress["adam_t"][0]
        agent["opt_critic"]["t"] = progress["adam_t"][1]
        for key, value in progress["loop"].items():     # each of the type a new run's loop has
            if type(value) is not type(loop[key]) and key != "obs":
                raise TypeError(f"loop {key} {value!r}")
        loop.update(progress["loop"])
        loop["obs"] = np.array(progress["loop"]["obs"], np.float64).reshape(env.observation_space.shape)
        csv.writer(io.StringIO()).writerows(loop["eval.csv"] + loop["topology.csv"])   # rows that csv can write
        counts = [loop["step"], buf["ptr"], progress["env"]["elapsed_steps"], *progress["adam_t"]]
        if any(type(n) is not int or n < 0 for n in counts) or buf["ptr"] >= buf["capacity"]:
            raise ValueError(f"step, buffer index, env step, Adam's steps: {counts}, not counts")
        rng.bit_generator.state = progress["rng"]
        restored = env_state(env, progress["env"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, csv.Error) as err:
        raise RunError(f"cannot read the checkpoint {checkpoint.path}: its progress is not one this version "
                       f"writes ({type(err).__name__}: {err})") from None
    if not restored:
        loop["obs"] = env.reset()[0]                     # a task whose state cannot be restored: a new episode

# =============================================================================
# 16. Watching a saved policy (--watch): its returns again, and a GIF of one episode.
# =============================================================================
GIF_EVERY = 4        # keep every 4th frame, and every 2nd pixel of each: a 1,000-step Hopper episode stays under 5 MB

def film(actor, env, seed):
    """The frames of the first evaluation episode: reset with the evaluation seed, no exploration noise."""
    frames = []
    obs, _ = env.reset(seed=seed)
    for t in itertools.count():
        if t % GIF_EVERY == 0:
            frames.append(env.render()[::2, ::2])        # (height, width, 3): MuJoCo's 480 px become 240
        act = actor_forward(actor, obs[None].astype(actor["W1"].dtype))[0][0]
        obs, _, terminated, truncated, _ = env.step(act)
        if terminated or truncated:
            return frames

def watch(actor, env, hp, step, run_dir):
    """--watch RUN_DIR, the run read as a resume reads it: rerun the actor's last evaluation in env (same episodes,
    same seed: eval.csv's last returns), print the returns, then write RUN_DIR/policy.gif of the first episode."""
    say(f"watch: the policy of step {step:,} of {hp['total_steps']:,}, the run's last checkpoint")
    returns = evaluate(actor, env, hp["eval_episodes"], hp["seed"] + 100)
    say(f"watch: return_mean={returns.mean():.2f} return_std={returns.std():.2f} episodes={hp['eval_episodes']} "
        f"returns={' '.join(f'{r:.2f}' for r in returns)}")
    try:
        import imageio.v3 as iio
        env = make_env(hp["env"], render_mode="rgb_array")
        frames = film(actor, env, hp["seed"] + 100)
    except Exception as err:                             # any renderer's failure: OpenGL, EGL, pygame, imageio
        reason = " ".join(str(err).split()) or type(err).__name__
        raise RunError(f"cannot draw {hp['env']} here ({reason}): MuJoCo needs OpenGL (MUJOCO_GL=egl or osmesa "
                       "without a screen); Pendulum: pip install \"gymnasium[classic_control]\"", 1) from None
    fps = env.metadata.get("render_fps", 30)
    path = os.path.join(run_dir, "policy.gif")
    write_atomically(path, lambda f: iio.imwrite(f, frames, extension=".gif", duration=1000 * GIF_EVERY / fps,
                                                 loop=0), binary=True)
    say(f"watch: {path} ({len(frames)} frames, every {GIF_EVERY}th of the first episode)")
    return 0

# =============================================================================
# 17. main: build the run, watch the training loop of Part I, and the one error boundary.
# =============================================================================
def run_training(args, argv, mode):
    """Build a run, new or read from RUN_DIR's checkpoint (--resume, --watch: with its config.json's settings, not
    today's defaults); watch it, or save it at once (never a run without a checkpoint) and train it. It holds its
    folder (hold_run_dir) until it ends: a run read from one, before it reads a file there."""
    folder = getattr(args, mode, None)                   # --resume's or --watch's RUN_DIR; None: a new run
    lock = None
    created = None                                       # a new run's folder
    try:
        if folder is not None:
            lock = hold_run_dir(folder)
            checkpoint = load_checkpoint(folder)
            args = saved_args(checkpoint.config, checkpoint.path, make_parser())
        env = make_env(args.env)
        eval_env = make_env(args.env)
        args.env = env.spec.id                           # the version that runs: Pendulum is Pendulum-v1
        n_obs = env.observation_space.shape[0]
        n_act = env.action_space.shape[0]
        hp = hyperparameters(args)
        rng = np.random.default_rng(args.seed)           # the only source of randomness; passed explicitly
        try:                                             # every array whose size a flag sets, before step 1
            agent = build_agent(n_obs, n_act, env.action_space.low.astype(np.float64),
                                env.action_space.high.astype(np.float64), hp, rng)
            buf = buffer_init(min(args.buffer_size, args.total_steps), n_obs, n_act)
            np.zeros(args.eval_episodes)                 # as each evaluation does (evaluate)
        except UnreachableSparsity as err:
            raise RunError(f"--{err}") from None
        except MemoryError as err:
            raise RunError(f"out of memory: {err}; lower --hidden, --buffer-size or --eval-episodes", 1) from None
        run = describe_run(agent, hp, args, argv)
        obs, _ = env.reset(seed=args.seed)               # seed once; later resets continue the env's own stream
        # the loop's state, saved with the checkpoints: training FLOPs so far (and dense TD3's), the CSV files' rows
        loop = {"step": 0, "last_eval": float("nan"), "obs": obs, "flops": 0.0, "flops_dense": 0.0,
                "eval.csv": [EVAL_FIELDS], "topology.csv": [TOPOLOGY_FIELDS]}
        if folder is None:
            created = new_run_dir(args)
            run["dir"] = created
            lock = hold_run_dir(created)
        else:
            run["config"] = checkpoint.config
            run["dir"] = os.path.dirname(checkpoint.path)
            resume_from(checkpoint, agent, buf, rng, env, loop)
            if mode == "watch":
                return watch(agent["actor"], eval_env, hp, loop["step"], run["dir"])
            check_resume_loses_nothing(run, loop)
            run["flops_iter"] = iteration_flops(agent["actor"], agent["critic"], hp["batch_size"], hp["policy_delay"])
            say(f"resume: {run['dir']}, after step {loop['step']} of {hp['total_steps']}")
            if loop["step"] == hp["total_steps"]:
                say("resume: the run is finished, nothing to train; its files are written again, as they were")
            if "buffer/obs" not in checkpoint.arrays:
                say("resume: the replay buffer was not saved (--save-buffer): it refills, and the run differs")
            if "mujoco" not in checkpoint.progress["env"]:
                say("resume: this task's state cannot be restored, so a new episode starts")
        run["config"]["run_dir"] = run["dir"]            # where the folder is now, if it was moved
        save_run(run, agent, buf, rng, env, loop)        # never a run without a checkpoint
        for key, value in run["config"].items():         # the header: key: value, or key: k=v k=v for a dict
            if type(value) is dict:
                value = " ".join(f"{k}={v}" for k, v in value.items())
            say(f"{key}: {value}")
        return train_and_log(hp, agent, env, eval_env, buf, rng, loop, run, args.log_every)
    finally:                                             # however the run ends (an error, Ctrl-C):
        if lock is not None:
            os.close(lock)                               # its lock ends with it, in-process too
        if created and not os.path.exists(os.path.join(created, CHECKPOINT)):
            shutil.rmtree(created, ignore_errors=True)   # a new folder that holds nothing to resume

# Ctrl-C, SIGTERM, and SIGHUP (a closed terminal; not on Windows), each answered as Ctrl-C
STOP_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]

def train_and_log(hp, agent, env, eval_env, buf, rng, loop, run, log_every):
    """Part I's training loop, and at each of its yields: log, write the evaluation, checkpoint or stop."""
    stop = {}

    def note_signal(signum, frame):
        """Ctrl-C or SIGTERM: the loop finishes its step (an evaluation can take a minute), saves and stops. A
        second one stops at once, from the checkpoint of the last evaluation."""
        if "signal" in stop:
            raise KeyboardInterrupt
        stop["signal"] = signum
        note = f"{signal.Signals(signum).name}: stopping after this step; press Ctrl-C again to stop at once\n"
        with contextlib.suppress(OSError, AttributeError):   # stderr None or closed; unbuffered: a print here
            os.write(sys.stderr.fileno(), note.encode())       # could land inside another

    handlers = {}
    for sig in STOP_SIGNALS:
        handlers[sig] = signal.signal(sig, note_signal)
    start = time.perf_counter()
    clock = {"log": {}}                                  # the latest losses, and when training started
    try:
        for step, info in train(agent, env, eval_env, buf, hp, rng, loop):
            if "eval_returns" in info:
                loop["last_eval"] = float(info["eval_returns"].mean())
                loop["eval.csv"].append(evaluation_row(info["eval_returns"], agent, hp, loop, run))
                loop["topology.csv"] += input_rows(step, agent)
                save_run(run, agent, buf, rng, env, loop)
                say("eval " + " ".join(f"{k}={v}" for k, v in zip(EVAL_FIELDS, loop["eval.csv"][-1])))
            else:
                record_step(info, step, agent, hp, loop, run, clock)
                if eval_due(step, hp):
                    continue                             # this step's evaluation is the next yield
            if step % log_every == 0:
                print_progress(step, hp["total_steps"], loop, agent, clock)
            if "signal" in stop and step < hp["total_steps"]:
                save_run(run, agent, buf, rng, env, loop)
                command = pasteable(f"python dst_td3.py --resume {shlex.quote(run['dir'])}")
                say(f"interrupted ({signal.Signals(stop['signal']).name}) after step {step}: checkpoint saved; "
                    f"resume with: {command}")
                return 128 + stop["signal"]
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    wall = time.perf_counter() - start
    say(f"done steps={hp['total_steps']} wall={wall:.0f}s final_eval={loop['last_eval']:.1f} run_dir={run['dir']}")
    say(f"reproduce: {pasteable(run['config']['command'])}")
    return 0

def guarded(program, command, *args):
    """The one error boundary, of this program and of the two beside it: return command(*args), its exit code.
    Every failure ends here in one line on stderr, `program: error: ...`, without a traceback."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):   # overflow becomes inf/NaN, which the loop reports
            return command(*args)
    except RunError as err:
        say(f"{program}: error: {err.args[0]}", sys.stderr)
        if len(err.args) > 1:
            return err.args[1]
        return 2
    except BrokenPipeError:                              # stdout closed (| head): stop quietly; files are saved
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:                               # a full or read-only disk: the file (or stdout), and why
        say(f"{program}: error: {err.filename or 'stdout'}: {err.strerror or err}", sys.stderr)
        return 1
    except ImportError as err:                           # a missing package
        say(f"{program}: error: pip install -r requirements.txt: {err}", sys.stderr)
        return 1
    except KeyboardInterrupt:                            # Ctrl-C or SIGTERM outside the training loop, or twice
        say(f"{program}: interrupted", sys.stderr)
        return 130

def run_command(argv):
    """Parse and check the command line, then train, resume or watch."""
    args = make_parser().parse_args(argv)
    mode = check_args(args, given_flags(argv))
    if mode == "watch" and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")        # no screen: MuJoCo draws with EGL; read when it is imported
    return run_training(args, argv, mode)

def main(argv=None):
    """Run the mode the flags ask for, inside the error boundary. argv: a list, as sys.argv[1:] (the default)."""
    if argv is None:
        argv = sys.argv[1:]
    return guarded("dst_td3.py", run_command, list(argv))

if __name__ == "__main__":
    for sig in STOP_SIGNALS:                             # from here on each raises KeyboardInterrupt, which ends a
        signal.signal(sig, signal.default_int_handler)   # file's write whole (write_atomically) and main answers
    sys.exit(main())
