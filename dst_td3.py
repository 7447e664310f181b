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
of the actor and the targets); one iteration follows every step after the first S uniformly random ones.

References (the keys used in comments):
  [TD3]    S. Fujimoto, H. van Hoof, D. Meger. Addressing Function Approximation Error in Actor-Critic
           Methods. ICML 2018, arXiv:1802.09477.
  [DS-TD3] G. Sokar, E. Mocanu, D. C. Mocanu, M. Pechenizkiy, P. Stone. Dynamic Sparse Training for Deep
           Reinforcement Learning. IJCAI 2022, arXiv:2106.04217 (long version: Algorithms 1-3, Eqs. 1-10).
  [SET]    D. C. Mocanu et al. Scalable training of artificial neural networks with adaptive sparse
           connectivity inspired by network science. Nature Communications 2018.
  [Adam]   D. P. Kingma, J. Ba. Adam: A Method for Stochastic Optimization. ICLR 2015.
  [RigL]   U. Evci, T. Gale, J. Menick, P. S. Castro, E. Elsen. Rigging the Lottery: Making All Tickets Winners.
           ICML 2020 (gradient growth, cosine drop schedule).
  [Graesser] L. Graesser, U. Evci, E. Elsen, P. S. Castro. The State of Sparse Training in Deep Reinforcement
           Learning. ICML 2022 (uniform vs Erdős–Rényi, schedules).
  [ReDo]   G. Sokar, R. Agarwal, P. S. Castro, U. Evci. The Dormant Neuron Phenomenon in Deep Reinforcement
           Learning. ICML 2023 (τ-dormant units).

Shape legend:  B batch   S observation size   A action size   H hidden width (256)
               2 the twin-critic axis: both critics live in one array, Q1 at index 0 and Q2 at index 1.

DS-TD3 [DS-TD3, Alg. 1-3], line by line as the training loop (train, section 10) and the iteration it calls
(train_iteration, section 8) run it:
    init actor π_φ and critics Q_θ1, Q_θ2 with Erdős–Rényi masks (Eq. 1); targets φ' ← φ, θ' ← θ
                                                              (build_agent, section 8: the agent train is given)
    for t = 1 .. T:
        a = uniform random if t <= S, else clip(π(s) + N(0, (0.1·max_a)²), lo, hi)
        step the env, store (s, a, r, s', terminated) in the replay buffer; at an episode's end, reset
        if t > S, training iteration i = t - S:
            sample a batch of B transitions
            ã = clip(π'(s') + clip(N(0, σ̃²), -c, c), lo, hi)
            y = r + γ·(1 - terminated)·min(Q'1(s', ã), Q'2(s', ã))
            critic step on  Σ_j mean((Q_θj(s, a) - y)²)
            if i % e == 0 and adaptation has not stopped:  drop-and-grow in the critics   (Alg. 2)
            if i % d == 0:
                actor step on  -mean(Q_θ1(s, π(s)))
                if i % e == 0 and adaptation has not stopped:  drop-and-grow in the actor
                θ' ← τθ + (1-τ)θ',  φ' ← τφ + (1-τ)φ'                                 (Eq. 6)
                MaintainSparsity: keep the k largest |w| of each sparse target matrix (Alg. 3, Eq. 7)
        if t % eval_every == 0:  the return of 10 deterministic episodes on a separate env seeded seed + 100

Three algorithms share this loop (--algo): td3 (dense, no masks), static-td3 (Erdős–Rényi masks that never
change) and ds-td3 (masks that evolve as above).

Differences from the paper and its official code (each is also marked `# CHOICE:` where it happens):
  - Adam moments are masked too: an absent connection has weight, gradient and both moments exactly 0. The
    official code re-masks only the weights after each step, so its Adam moments are dense.
  - Drop rule: η of the positive and η of the negative weights are dropped separately (as the official code;
    Alg. 2 writes c/2 of each). Counts are rounded up so a tiny layer still adapts; an active weight that is
    exactly 0 counts as positive, so it is dropped first.
  - Grown positions exclude the ones just dropped (the official code can regrow them), and grown weights start
    at exactly 0 (official: one Adam step from its dense moments away from 0).
  - The first topology update comes at iteration e, then every e (official: iteration 2, then every e).
  - Adaptation stops at a fraction of the run (--stop-adapt 0.95): at the paper's settings the last regrowing
    update is the official code's (iteration T - S - 50,000 = 925,000), followed by its drop-only update.
  - MaintainSparsity keeps as many target weights as the online layer has connections (its mask count); the
    official code counts the online layer's nonzero weights, which differs when a connection's weight is 0.
  - Gymnasium v4 tasks instead of gym v3 (the same dynamics for Hopper, HalfCheetah, Walker2d).
  - Warm-up actions are drawn uniformly by our own seeded generator, not by `action_space.sample()`, so that a
    single seeded generator is the only source of randomness besides the seeded env resets.
  - Every 100 iterations, weights and Adam moments below 1.2e-38 (float32's subnormal range) are set to 0, the
    software version of a CPU's flush-to-zero mode: subnormal numbers slowed dense TD3 5x (flush_subnormals).
  - Training FLOPs count one multiplication and one addition per connection and per sample for every product the
    code performs (forward, input gradient, weight gradient), on the actual schedule (actor every d iterations).

A map of the file:
  PART I — the method (read it top to bottom; it ends on the training loop)
     1 imports, the float type, the paper's hyperparameters     6 replay buffer
     2 layers: forward/backward pairs and the loss              7 the TD3 update: target, critic and actor steps,
     3 sparsity: Erdős–Rényi masks, drop-and-grow,                soft update, FLOPs
       MaintainSparsity, and the lab's choices: gradient        8 the agent and one training iteration (and the
       growth (--grow), a cosine η (--drop-schedule),             dense gradients that gradient growth ranks)
       uniform densities (--distribution)                       9 deterministic evaluation
     4 actor and twin critics                                  10 the training loop
     5 Adam
  PART II — running it (what a user needs around the method)
    11 command line and input checks   12 environments   13 run folders and logs, with the diagnostics:
    dormant units and topology.csv   14 checkpoints, resume and signals   15 profiling   16 evaluating a saved
    policy   17 the run report (--report)   18 main

Logged metrics (key=value lines, easy to grep; evaluations also go to <run dir>/eval.csv):
  sps            environment steps per second over the last log interval
  warmup_sps     steps per second of the random warm-up, and train_sps of training, in this process so far
  eta            time left: from train_sps, or during the warm-up from a timed probe of a training iteration
  loss_q         critic loss Σ_j mean((Q_j(s,a) - y)²) of the last iteration
  loss_pi        actor loss -mean(Q_1(s, π(s))) of the last actor step
  q1             mean Q_1(s, a) over the last batch, the critic's value estimate
  sparsity_*     fraction of weights that are absent, over all weight matrices of the network (biases excluded)
  densities      (run header) the fraction of connections present in each sparse layer, as Eq. 1 placed them
  blas_kernel    (run header, config.json) the OpenBLAS kernel that ran: kernels round differently (section 12)
  return_mean    mean undiscounted return of the evaluation episodes (no exploration noise)
  params         nonzero weights of actor + both critics (biases excluded), as the paper counts (Eq. 8)
  flops          training FLOPs so far and their ratio to dense TD3 with the same settings (Eqs. 9-10)
  dormant_*      fraction of τ-dormant hidden units (τ = 0.1) on a batch of replay states [ReDo]
  topology.csv   per evaluation: the connections each input keeps in the first layer of each sparse network
"""

# #############################################################################################################
#                                       PART I — THE METHOD
# #############################################################################################################

# =============================================================================
# 1. Imports, the floating-point type and the paper's hyperparameters.
# =============================================================================
import math
import os

# One BLAS thread by default, because two seeds side by side then use one core each (README, Speed); override
# from the shell, e.g. OPENBLAS_NUM_THREADS=2. TRAP: BLAS reads this once, when numpy is imported, so it comes
# first.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

DTYPE = np.float32  # training runs in float32 end to end; the tests run every function in float64

# The hyperparameters, with the paper's values [DS-TD3, Sec. 5; TD3, Sec. 6]. The functions below take them
# as `hp`, a plain dict with these keys (and algo, seed, sparsity, lambda_in); Part II fills it from the
# command line, whose defaults are these values.
PAPER = {
    "total_steps": 1_000_000,     # T, environment steps
    "learning_starts": 25_000,    # S, uniformly random steps before training
    "batch_size": 100,            # B
    "buffer_size": 1_000_000,     # replay capacity
    "hidden": 256,                # H, width of both hidden layers
    "gamma": 0.99,                # γ, discount
    "tau": 0.005,                 # τ, target update rate
    "lr": 1e-3,                   # Adam's learning rate, actor and critics
    "weight_decay": 2e-4,         # L2 coefficient added to the gradient [DS-TD3]
    "expl_noise": 0.1,            # exploration noise std, fraction of max action
    "policy_noise": 0.2,          # σ̃, target smoothing noise std, fraction of max action
    "noise_clip": 0.5,            # c, smoothing noise clip, fraction of max action
    "policy_delay": 2,            # d, actor and target update period
    "lambda_hidden": 64.0,        # λ2, Erdős–Rényi factor of the hidden layer
    "drop_fraction": 0.05,        # η, fraction of each sign dropped and regrown
    "update_period": 1000,        # e, topology update period in iterations
    "stop_adapt": 0.95,           # regrowing updates until this fraction of T (official: T - S - 50,000)
    "grow": "random",             # where connections regrow: at random [SET]; "gradient" is RigL's rule
    "drop_schedule": "constant",  # η at every update; "cosine" decays it to 0 [RigL; Graesser]
    "distribution": "er",         # Erdős–Rényi densities per layer (Eq. 1); "uniform": one density [Graesser]
    "eval_every": 5000,           # evaluate every this many steps
    "eval_episodes": 10,          # deterministic episodes per evaluation
}
# λ1, the Erdős–Rényi factor of the input layer, per task family [DS-TD3, Sec. 5]
PAPER_LAMBDA_IN = {"HalfCheetah": 7.0, "Hopper": 7.0, "Walker2d": 7.0, "Ant": 40.0, "Humanoid": 61.0}
DEFAULT_LAMBDA_IN = 7.0  # CHOICE: tasks the paper did not run get the value of its three small tasks


# =============================================================================
# 2. Layers. Each *_forward returns (out, cache); *_backward takes (dout, cache).
#    Every function also works with a leading twin axis: x (B, n) with W (2, n, m) gives (2, B, m).
# =============================================================================
def masked_linear_forward(x, W, b, M=None):
    """y = x @ (W*M) + b.   x: (..., B, n_in)  W, M: (..., n_in, n_out)  b: (..., 1, n_out)

    Absent weights are kept exactly 0 at all times (the backward masks their gradient, Adam keeps them at 0,
    drop-and-grow zeroes the dropped ones), so W*M == W and the forward needs no multiplication by M.
    """
    y = x @ W                                            # (..., B, n_in) @ (..., n_in, n_out) -> (..., B, n_out)
    y += b                                               # PERF: in place, no second (2, B, H): 6 % of an iteration
    return y, (x, W, M)


def masked_linear_backward(dy, cache, need_dx=True, need_dW=True):
    """dy: (..., B, n_out) -> dx: (..., B, n_in), dW: (..., n_in, n_out), db: (..., 1, n_out).

    need_dx=False skips dx (the input is data), need_dW=False skips dW and db (only ∂Q/∂a is wanted).
    A skipped result is returned as None.
    """
    x, W, M = cache
    dx = None
    if need_dx and W.shape[-1] == 1:
        # PERF: with one output (the critic's last layer) the product is an outer product, and numpy's matmul
        # of a stack with an inner size of 1 runs its own unvectorised loop: this broadcast saves 11 % of an
        # iteration
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
    the critics. The 1/B of the mean enters the backward pass here and nowhere else.
    """
    n_batch = pred.shape[-2]
    diff = pred - target                                 # (..., B, 1)
    loss = float((diff * diff).sum()) / n_batch
    dpred = diff * (2.0 / n_batch)                       # ∂L/∂pred
    return loss, dpred


# =============================================================================
# 3. Sparsity: Erdős–Rényi masks (Eq. 1), drop-and-grow (Alg. 2), MaintainSparsity (Alg. 3), and the lab's
#    other rules: uniform densities, gradient growth [RigL], a cosine η schedule.
# =============================================================================
def er_probability(n_in, n_out, lam):
    """PAPER: p_l = λ_l · (n_{l-1} + n_l) / (n_{l-1} · n_l), capped at 1   [DS-TD3, Eq. 1]"""
    return min(1.0, lam * (n_in + n_out) / (n_in * n_out))


def er_densities(sizes, lams, sparsity=None):
    """Connection probability of each sparse layer of one network.

    sizes: [(n_in, n_out), ...] of the whole network, the last one dense (the output layer).
    lams:  λ of each sparse layer (all layers but the last).
    sparsity=None keeps the paper's λ values. A number s instead scales all the ER probabilities by one factor f
    (each still capped at 1) so that the network's expected sparsity, counted over all its weight matrices, is s.
    """
    p_er = [er_probability(n_in, n_out, lam) for (n_in, n_out), lam in zip(sizes[:-1], lams)]
    if sparsity is None:
        return p_er
    n_sparse = [n_in * n_out for n_in, n_out in sizes[:-1]]
    n_dense_out = sizes[-1][0] * sizes[-1][1]
    budget = (1.0 - sparsity) * (sum(n_sparse) + n_dense_out) - n_dense_out   # weights the sparse layers may keep
    if budget <= 0 or budget > sum(n_sparse):
        raise ValueError(f"sparsity {sparsity} cannot be reached with a dense output layer")

    def kept(f):
        return sum(min(1.0, f * p) * n for p, n in zip(p_er, n_sparse))

    lo, hi = 0.0, 1.0
    while kept(hi) < budget:                              # kept(f) grows with f, so bracket, then bisect
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if kept(mid) < budget else (lo, mid)
    return [min(1.0, hi * p) for p in p_er]


def uniform_densities(sizes, lams, sparsity=None):
    """The same number of weights as er_densities keeps, spread over the sparse layers at one density: the
    uniform allocation that Erdős–Rényi is compared with [Graesser]. ER's density grows with 1/n_in + 1/n_out,
    times the layer's λ: with the paper's λ's, Hopper's actor keeps 66 % of its 11-input first layer and 50 % of
    its hidden layer; uniform gives both 51 %."""
    p_er = er_densities(sizes, lams, sparsity)
    n_sparse = [n_in * n_out for n_in, n_out in sizes[:-1]]
    p = sum(p * n for p, n in zip(p_er, n_sparse)) / sum(n_sparse)
    return [p] * len(n_sparse)


def n_present(M):
    """Connections in a 0/1 mask."""
    return int(np.count_nonzero(M))


def erdos_renyi_mask(n_in, n_out, p, rng, dtype=DTYPE):
    """M: (n_in, n_out) with each connection present independently with probability p   [DS-TD3, Eq. 1]"""
    return (rng.random((n_in, n_out)) < p).astype(dtype)


def drop_and_grow(W, M, eta, rng, grow=True, dW_dense=None):
    """One topology update of one sparse layer, in place   [DS-TD3, Alg. 2; SET].

    W, M: (n_in, n_out), contiguous. Returns (dropped, grown): flat indices, equally many (grown is empty when
    grow=False: the last update of a run drops only, as the official code does).
    Drop: the η fraction of positive weights closest to zero (the smallest positive ones) and the η fraction of
    negative weights closest to zero (the negative ones of smallest magnitude).
    Grow: as many new connections among the positions that were absent before this update: uniformly at random
    (the paper, SET), or, given dW_dense (n_in, n_out) = ∂L/∂W at every position, where |∂L/∂W| is largest [RigL].
    """
    w, mask = W.reshape(-1), M.reshape(-1)               # views of the same memory (contiguous arrays)
    active = np.flatnonzero(mask)
    # CHOICE: grown positions exclude the ones just dropped, because Alg. 2 grows "new" connections; the official
    # code can regrow them (244 of 5,197 drops in one measured update). TRAP: so `free` is taken before the drop.
    free = np.flatnonzero(mask == 0)
    # CHOICE: each sign separately, η of each (official code; Alg. 2 writes c/2 of each); w = 0 counts as
    # positive, so an active weight stuck at exactly 0 goes first. Counts round up, so that a layer with fewer
    # than 1/η weights of a sign still adapts, and never exceed what can be regrown.
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
    # CHOICE: grown weights start at exactly 0, so the network's function does not change at the update; the
    # official code's start one Adam step away from 0 (|w| up to 8e-4), from its dense moments
    mask[grown], w[grown] = 1, 0
    return dropped, grown


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


def maintain_sparsity(W_targ, k):
    """Keep the k largest |w| of a target weight matrix and zero the rest, in place   [DS-TD3, Alg. 3, Eq. 7].

    The soft update mixes the online weights into the target, so after a topology update the target also holds
    the online layer's new connections while its dropped ones are still decaying: more than k nonzeros. Keeping
    the k largest |w| is zeroing the n_extra smallest nonzero |w|. Returns n_extra, the number zeroed.
    O(n) selection (a partition), never a full sort.
    """
    w = W_targ.reshape(-1)                               # (n_in·n_out,) a view: writes go to W_targ
    n_extra = int(np.count_nonzero(w)) - k
    if n_extra <= 0:                                     # already as sparse as its online layer: nothing to do
        return 0
    # PERF: |w| as integer keys: the bits of a float >= 0, read as an unsigned integer, order like the numbers,
    # and minus 1 (wrapping around) sends the zeros to the top, never among the smallest. numpy partitions these
    # keys in 0.55 ms per 256x256 matrix, floats (zeros set to +inf) in 0.98 ms: 16 % of a HalfCheetah DS-TD3
    # iteration (README, Speed).
    key = np.abs(w).view(f"u{w.itemsize}") - 1          # (n_in·n_out,) uint, zeros -> largest
    kth = np.partition(key, n_extra - 1)[n_extra - 1]    # the n_extra-th smallest nonzero |w|, as a key
    smallest = np.flatnonzero(key < kth)
    ties = np.flatnonzero(key == kth)[:n_extra - smallest.size]   # exact ties at the cut: any of them will do
    w[smallest], w[ties] = 0, 0
    return n_extra


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
    Measured: 5 % of an iteration.
    """
    net["flat"] = np.concatenate([net[key].reshape(-1) for key in TRAINABLE])
    offset = 0
    for key in TRAINABLE:
        size = net[key].size
        net[key] = net["flat"][offset:offset + size].reshape(net[key].shape)   # a view: no copy
        offset += size
    return net


def copy_net(net):
    """An independent copy of a network (its target): same weights, same zeros, its own flat vector."""
    return with_flat({key: value.copy() for key, value in net.items() if key != "flat"})


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

    For a symmetric action space act_scale = max_action and act_bias = 0, the paper's tanh(z)·max_action.
    """
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
    and q is (1, B, 1). The shapes below are written for both twins.
    """
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
    actor. Skipping what is not needed saves about a third of the critic's backward products.
    """
    lin1, relu1, lin2, relu2, lin3, n_obs = cache
    dh2, dW3, db3 = masked_linear_backward(dq, lin3, need_dW=param_grads)                        # (2, B, H)
    dh1, dW2, db2 = masked_linear_backward(relu_backward(dh2, relu2), lin2, need_dW=param_grads)  # (2, B, H)
    dx, dW1, db1 = masked_linear_backward(relu_backward(dh1, relu1), lin1,
                                          need_dx=not param_grads, need_dW=param_grads)        # (2, B, S+A)
    if not param_grads:
        # the input [s, a] fans out to both twins, so its gradient is the sum over the twin axis
        return None, dx.sum(axis=0)[:, n_obs:]                                                 # (B, A)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}, None


def count_weights(net):
    """(nonzero weights, dense weights) over the weight matrices W1 W2 W3 of one network (biases excluded)."""
    present = sum(n_present(net[f"M{l}"]) if f"M{l}" in net else net[f"W{l}"].size for l in (1, 2, 3))
    dense = sum(net[f"W{l}"].size for l in (1, 2, 3))
    return present, dense


# =============================================================================
# 5. Adam with L2 weight decay, mask-aware.
# =============================================================================
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # PyTorch's defaults, which the paper's code uses


def adam_init(net):
    """Zero first and second moments m_*, v_* for every trainable array, laid out like the network (one flat
    vector m_flat, v_flat with a view per array), and two scratch vectors, g_flat and tmp_flat, so that a step
    allocates nothing."""
    state = {"t": 0}
    for prefix in ("m_", "v_", "g_"):
        zeros = with_flat({key: np.zeros_like(net[key]) for key in TRAINABLE})
        state.update({prefix + key: value for key, value in zeros.items()})
    state["tmp_flat"] = np.zeros_like(net["flat"])
    return state


def adam_step(net, grads, state, lr, weight_decay):
    """One Adam step on every trainable array of net, in place   [Adam, Alg. 1].

    CHOICE: masked moments. An absent weight has W = 0 and gradient 0, so g = 0 there, and m, v stay at the 0
    that topology_update leaves them at: the step moves it by exactly 0/(√0 + ε) = 0. No mask is needed here.
    Each line works on the whole network at once (flat vectors, see with_flat) and writes into an existing
    vector (out=): the step runs every iteration, and fresh temporaries would cost as much as the arithmetic.
    """
    beta1, beta2 = ADAM_BETAS
    state["t"] += 1
    t = state["t"]
    W, m, v = net["flat"], state["m_flat"], state["v_flat"]
    g, tmp = state["g_flat"], state["tmp_flat"]
    # PAPER: g = ∇L + wd·W   (L2 added to the gradient, as torch.optim.Adam(weight_decay=wd) does)
    np.multiply(W, weight_decay, out=g)
    for key, dW in grads.items():
        state["g_" + key] += dW                          # g_W1, g_b1, ... are views of g
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
    # the same update with the bias corrections in two scalars (PERF: a pass fewer; a critic step 280 µs, not 400)
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
    """y: (B, 1). sigma, c, act_lo, act_hi: (A,), already scaled to the action range."""
    next_obs = batch["next_obs"]
    # PAPER: ã = clip(π'(s') + clip(ε, -c, c), lo, hi),  ε ~ N(0, σ̃²)        [TD3, Alg. 1 / Eq. 15]
    eps = np.clip(rng.standard_normal((next_obs.shape[0], sigma.size), dtype=next_obs.dtype) * sigma, -c, c)
    a_smooth = np.clip(actor_forward(actor_targ, next_obs)[0] + eps, act_lo, act_hi)        # (B, A)
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
    targ = net_targ["flat"]                              # all trainable arrays of the target at once (with_flat)
    targ *= 1 - tau
    targ += tau * net["flat"]


def n_connections(net, l, twin=slice(None)):
    """Connections of layer l: all of it, or of one twin (twin=0) of a critic."""
    if f"M{l}" in net:
        return n_present(net[f"M{l}"][twin])
    return net[f"W{l}"][twin].size


def iteration_flops(actor, critic, batch_size, policy_delay):
    """Training FLOPs of one iteration on average, counting what sections 4 and 7 compute   [DS-TD3, Eqs. 9-10].

    Each product with a layer of n connections costs 2·n FLOPs per sample (one multiplication and one addition
    per connection) for the forward, for the input gradient and for the weight gradient alike. Sparse layers
    count their connections only: that is the paper's metric, although numpy multiplies the masked matrices dense.
    CHOICE: every product the code performs, on the actual schedule (the paper's own count differs: README).
    """
    n_a1, n_a2, n_a3 = (n_connections(actor, l) for l in (1, 2, 3))
    n_c1, n_c2, n_c3 = (n_connections(critic, l) for l in (1, 2, 3))       # both twins
    n_q1 = sum(n_connections(critic, l, twin=0) for l in (1, 2, 3))        # Q_θ1 alone
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
    Raises ValueError if hp["sparsity"] cannot be reached."""
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
    Returns {layer name: number of connections dropped (= grown, unless grow=False)}."""
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
    layer's nonzero weights, one fewer for every connection whose weight is exactly 0.
    """
    n_zeroed = 0
    for l in (1, 2):
        for M, W_targ in zip(as_stack(net[f"M{l}"]), as_stack(net_targ[f"W{l}"])):
            n_zeroed += maintain_sparsity(W_targ, n_present(M))
    return n_zeroed


def topology_due(iteration, hp):
    """Which topology update this training iteration makes: "grow" (drop-and-grow), "drop" (drop only) or None.

    Every e iterations, DS-TD3 only. CHOICE: the first update comes at iteration e (the official code: at
    iteration 2, then every e), a phase difference of no consequence.
    CHOICE: adaptation stops at a fraction of the run, which at the paper's settings is the official code's
    iteration: regrowing updates while the env step (iteration + S) is at most stop_adapt·T; the first update
    after that point drops η of each sign and grows nothing; none after. At T = 1M, S = 25k, stop_adapt = 0.95
    the last regrowing update is at iteration 925,000 (official: T - S - 50,000), the drop-only one at 926,000,
    and every sparse layer ends ~5 % sparser. A 300k-step run stops at step 285,000 (official: 250,000).
    """
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

    TRAP: subnormal numbers (below 1.2e-38 in float32) are handled by x86 CPUs about 100x slower than normal
    ones, in BLAS products too. Adam with L2 weight decay drives the weights of a dead ReLU unit (gradient
    exactly 0) and their first moments there within a few thousand iterations. Without this, dense TD3 on
    Hopper had 13k subnormal weights of 65k in the actor's hidden layer after 19k iterations, and a run with
    the paper's settings ran at 23-29 steps/s from step 32k on, against a median of 129 with this flush.
    CHOICE: the hardware's flush-to-zero mode would do this, but numpy cannot switch it on. The change to the
    network is below 1.2e-38 per weight.
    """
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
# 9. Deterministic evaluation, as in [TD3]'s code.
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
        # CHOICE: uniform warm-up actions from our one seeded generator, not action_space.sample(), so that
        # the generator and the seeded env resets are the only sources of randomness
        return rng.uniform(agent["act_lo"], agent["act_hi"]).astype(DTYPE)
    # PAPER: a = clip(π(s) + N(0, (0.1·max_a)²), lo, hi)
    act = actor_forward(agent["actor"], obs[None].astype(DTYPE))[0][0]          # (1, S) -> (1, A) -> (A,)
    noise = rng.standard_normal(act.size, dtype=DTYPE) * agent["expl"]
    return np.clip(act + noise, agent["act_lo"], agent["act_hi"])


def eval_due(step, hp):
    """Evaluate every eval_every steps, and after the last step."""
    return step % hp["eval_every"] == 0 or step == hp["total_steps"]


def train(agent, env, eval_env, buf, hp, rng, state):
    """DS-TD3's training loop [DS-TD3, Alg. 1]: the module docstring's pseudocode, line by line.

    state: {"step": steps done so far, "obs": the current observation}; a fresh run starts at step 0 with the
    first observation of a seeded reset, and a resumed run where its checkpoint left off.
    How Part II watches the run: this is a generator. After each step (and its training iteration) it yields
    (step, log), and after each evaluation (step, {"eval_returns": returns}). The caller's for-loop body runs
    at each yield: it prints, writes files, saves checkpoints, and ends the run by leaving the loop, before an
    evaluation if it must (a NaN loss). The method stays here, whole: the caller can neither see into a step
    nor change one.
    """
    S = hp["learning_starts"]
    for t in range(state["step"] + 1, hp["total_steps"] + 1):
        state["step"] = t
        obs = state["obs"]
        act = explore(agent, obs, t <= S, rng)
        next_obs, rew, terminated, truncated, _ = env.step(act)
        buffer_add(buf, obs, act, rew, next_obs, terminated)          # TRAP: terminated only, never truncated
        state["obs"] = env.reset()[0] if terminated or truncated else next_obs
        log = {}
        # after a resume without the saved buffer, training waits until the buffer holds one batch again
        if t > S and buf["size"] >= hp["batch_size"]:
            log = train_iteration(agent, buf, t - S, hp, rng)
        yield t, log
        if eval_due(t, hp):
            yield t, {"eval_returns": evaluate(agent["actor"], eval_env, hp["eval_episodes"], hp["seed"] + 100)}


# #############################################################################################################
#                                       PART II — RUNNING IT
# What a user needs around the method: the command line, environments, run folders, checkpoints, profiling.
# Nothing below changes what Part I computes.
# #############################################################################################################
import argparse
import csv
import ctypes
import difflib
import errno
import fcntl
import glob
import itertools
import json
import platform
import shlex
import signal
import sys
import time
import warnings
import zipfile


# =============================================================================
# 11. Command line and input checks. `--help` is the hyperparameter table; defaults are the paper's (PAPER).
# =============================================================================
class DefaultsOnce(argparse.ArgumentDefaultsHelpFormatter):
    """--help adds "(default: ...)" to each flag, except where the help itself says what happens by default."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def make_parser():
    p = argparse.ArgumentParser(
        description="DS-TD3 (dynamic sparse TD3) in pure numpy; see the module docstring.",
        formatter_class=DefaultsOnce, allow_abbrev=False)    # no abbreviations: --resume checks the flags given
    g = p.add_argument_group("experiment")
    g.add_argument("--env", type=str, default="Hopper-v4", help="Gymnasium id of a task with a Box action space")
    g.add_argument("--algo", type=str, default="ds-td3", choices=["ds-td3", "static-td3", "td3"],
                   help="ds-td3: evolving sparse masks; static-td3: fixed sparse masks; td3: dense")
    g.add_argument("--seed", type=int, default=0, help="seeds the generator, the env (seed) and eval env (seed+100)")
    g.add_argument("--total-steps", type=int, default=PAPER["total_steps"], help="environment steps T")
    g.add_argument("--runs-dir", type=str, default="runs", help="each run writes config.json and eval.csv here")

    g = p.add_argument_group("TD3 [TD3, Alg. 1]")
    g.add_argument("--learning-starts", type=int, default=PAPER["learning_starts"],
                   help="uniformly random steps S before training")
    g.add_argument("--batch-size", type=int, default=PAPER["batch_size"], help="transitions per training iteration B")
    g.add_argument("--buffer-size", type=int, default=PAPER["buffer_size"], help="replay buffer capacity")
    g.add_argument("--hidden", type=int, default=PAPER["hidden"], help="width H of both hidden layers")
    g.add_argument("--gamma", type=float, default=PAPER["gamma"], help="discount γ")
    g.add_argument("--tau", type=float, default=PAPER["tau"], help="target update rate τ")
    g.add_argument("--lr", type=float, default=PAPER["lr"], help="Adam learning rate, actor and critics")
    g.add_argument("--weight-decay", type=float, default=PAPER["weight_decay"],
                   help="L2 coefficient added to the gradient [DS-TD3]")
    g.add_argument("--expl-noise", type=float, default=PAPER["expl_noise"],
                   help="exploration noise std, fraction of max action")
    g.add_argument("--policy-noise", type=float, default=PAPER["policy_noise"],
                   help="target smoothing std σ̃, fraction of max action")
    g.add_argument("--noise-clip", type=float, default=PAPER["noise_clip"],
                   help="smoothing noise clip c, fraction of max action")
    g.add_argument("--policy-delay", type=int, default=PAPER["policy_delay"], help="actor and target update period d")

    g = p.add_argument_group("sparsity [DS-TD3, Eq. 1 and Alg. 2-3]")
    g.add_argument("--sparsity", type=float, default=None,
                   help="target sparsity per network (e.g. 0.5, 0.8); default: none, the paper's λ values apply")
    g.add_argument("--lambda-in", type=float, default=None,
                   help="Erdős–Rényi λ1 of the input layer; default: 7 (Hopper, HalfCheetah, Walker2d, others), "
                        "40 (Ant), 61 (Humanoid)")
    g.add_argument("--lambda-hidden", type=float, default=PAPER["lambda_hidden"],
                   help="Erdős–Rényi λ2 of the hidden layer")
    g.add_argument("--drop-fraction", type=float, default=PAPER["drop_fraction"],
                   help="η, the fraction of each sign dropped and regrown")
    g.add_argument("--update-period", type=int, default=PAPER["update_period"],
                   help="topology update period e, in iterations")
    g.add_argument("--stop-adapt", type=float, default=PAPER["stop_adapt"],
                   help="regrowing topology updates while the env step is at most this fraction of --total-steps; "
                        "the next update drops only, then none. At the paper's 1M steps and 25k warm-up the last "
                        "regrowing update is iteration 925,000 (official code: T - S - 50,000); shorter runs "
                        "stop at the same fraction")
    g.add_argument("--grow", type=str, default=PAPER["grow"], choices=["random", "gradient"],
                   help="where dropped connections regrow: random (the paper, SET) or gradient (RigL, Evci et al. "
                        "2020: the absent positions with the largest |dL/dW| of the current batch)")
    g.add_argument("--drop-schedule", type=str, default=PAPER["drop_schedule"], choices=["constant", "cosine"],
                   help="η at each update: constant (the paper) or cosine, η/2·(1 + cos(π t / t_stop)), 0 at the "
                        "stop of adaptation (RigL; Graesser et al. 2022)")
    g.add_argument("--distribution", type=str, default=PAPER["distribution"], choices=["er", "uniform"],
                   help="densities of the sparse layers: er, Erdős–Rényi (the paper, Eq. 1), or uniform, one "
                        "density for all with the same number of weights (Graesser et al. 2022)")

    g = p.add_argument_group("logging and evaluation")
    g.add_argument("--eval-every", type=int, default=PAPER["eval_every"], help="evaluate every this many env steps")
    g.add_argument("--eval-episodes", type=int, default=PAPER["eval_episodes"],
                   help="deterministic episodes per evaluation")
    g.add_argument("--log-every", type=int, default=2000, help="print a progress line every this many steps")
    g.add_argument("--profile", action="store_true", help="at the end, print the share of wall time per phase")

    g = p.add_argument_group("checkpoints (written to the run folder at every evaluation)")
    g.add_argument("--resume", type=str, default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its checkpoint, with its saved configuration")
    g.add_argument("--save-buffer", action="store_true",
                   help="also save the replay buffer, so that a resumed run is exactly the uninterrupted one "
                        "(large: about 110 MB per million Hopper transitions)")
    g.add_argument("--load", type=str, default=None, metavar="CHECKPOINT",
                   help="with --eval-only: the checkpoint.npz whose policy to evaluate")
    g.add_argument("--eval-only", action="store_true",
                   help="evaluate the --load policy for --eval-episodes episodes on --env and exit")
    g.add_argument("--render", action="store_true", help="with --eval-only: show the episodes in a window")

    g = p.add_argument_group("the run report (the paper's table and learning curves over runs and seeds)")
    g.add_argument("--report", type=str, nargs="+", default=None, metavar="DIR",
                   help="print the paper's metrics for every run below the DIRs, grouped by env, planned "
                        "--total-steps, algo and the lab's flags (--sparsity, --distribution, --grow, "
                        "--drop-schedule), and write their learning curves as an SVG figure; trains nothing")
    g.add_argument("--figure", type=str, default=None, metavar="SVG",
                   help="with --report: where to write the figure; default: report.svg in the first DIR")
    return p


class UserError(Exception):
    """Bad input: main() prints the message as one line and exits with code 2, without a traceback."""


class TrainingStopped(Exception):
    """A non-finite loss or weight: main() prints the message as one line and exits with code 1."""


class SystemFailure(Exception):
    """The operating system could not do what the run needs (a full or read-only disk, a file where a folder
    should be, too little memory): main() prints the message as one line and exits with code 1."""


def check_args(args):
    """Reject numbers the algorithm cannot run with, and runs that could never train, before anything is built."""
    floats = [action.dest for action in make_parser()._actions if action.type is float]
    not_finite = [name for name in floats if getattr(args, name) is not None and not math.isfinite(getattr(args, name))]
    if not_finite:
        name = not_finite[0]
        raise UserError(f"--{name.replace('_', '-')} must be a finite number, not {getattr(args, name)}")
    checks = [
        (args.seed >= 0, "--seed must be >= 0"),
        (args.total_steps > 0, "--total-steps must be > 0"),
        (args.learning_starts >= 0, "--learning-starts must be >= 0"),
        (args.total_steps > args.learning_starts,
         f"--total-steps ({args.total_steps}) must exceed --learning-starts ({args.learning_starts}), "
         "or the run never trains"),
        (args.batch_size > 0, "--batch-size must be > 0"),
        (args.buffer_size > 0, "--buffer-size must be > 0"),
        (args.batch_size <= min(args.buffer_size, args.total_steps),
         f"--batch-size ({args.batch_size}) must not exceed what the buffer can ever hold "
         f"(min(--buffer-size, --total-steps) = {min(args.buffer_size, args.total_steps)}), or the run never trains"),
        (args.hidden > 0, "--hidden must be > 0"),
        (0 <= args.gamma <= 1, "--gamma (γ) must be in [0, 1]"),
        (0 < args.tau <= 1, "--tau (τ) must be in (0, 1]"),
        (args.lr > 0, "--lr must be > 0"),
        (args.weight_decay >= 0, "--weight-decay must be >= 0"),
        (args.expl_noise >= 0 and args.policy_noise >= 0 and args.noise_clip >= 0, "noise scales must be >= 0"),
        (args.policy_delay > 0, "--policy-delay (d) must be > 0"),
        (args.sparsity is None or 0 <= args.sparsity < 1, "--sparsity must be in [0, 1)"),
        (args.lambda_in is None or args.lambda_in > 0, "--lambda-in (λ1) must be > 0"),
        (args.lambda_hidden > 0, "--lambda-hidden (λ2) must be > 0"),
        (0 < args.drop_fraction < 1, "--drop-fraction (η) must be in (0, 1)"),
        (args.update_period > 0, "--update-period (e) must be > 0"),
        (args.update_period % args.policy_delay == 0,
         "--update-period (e) must be a multiple of --policy-delay (d), so actor and critics adapt together"),
        (0 <= args.stop_adapt <= 1, "--stop-adapt must be in [0, 1]"),
        (args.algo != "td3" or args.sparsity is None, "--sparsity needs a sparse --algo (ds-td3 or static-td3)"),
        (args.eval_every > 0 and args.eval_episodes > 0 and args.log_every > 0,
         "--eval-every, --eval-episodes and --log-every must be > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def hyperparameters(args):
    """The `hp` dict of Part I: the parsed flags as a plain dict, with λ1 resolved for the task."""
    family = args.env.split("-")[0]
    lambda_in = args.lambda_in if args.lambda_in is not None else PAPER_LAMBDA_IN.get(family, DEFAULT_LAMBDA_IN)
    return {**vars(args), "lambda_in": lambda_in}


# =============================================================================
# 12. Environments, and the versions (and BLAS kernel) that a run records.
# =============================================================================
def make_env(env_id, render_mode=None):
    """gymnasium.make with one-line errors for the usual mistakes. Returns (env, gymnasium module)."""
    try:
        import gymnasium as gym
    except ImportError:
        raise UserError("gymnasium is not installed: run  pip install -r requirements.txt") from None
    # CHOICE: the v4 tasks, because they have the paper's v3 dynamics; Gymnasium would remind us that v5 exists
    # on every make
    warnings.filterwarnings("ignore", message=".*is out of date. You should consider upgrading")
    try:
        env = gym.make(env_id, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as err:      # the package Gymnasium names: MuJoCo, Box2D, ...
        hint = ";  pip install -r requirements.txt installs MuJoCo" if "mujoco" in str(err).lower() else ""
        raise UserError(f"{env_id} cannot be built: {err}{hint}") from None
    except ImportError as err:                           # a registered version this install cannot build
        working = buildable_versions(gym, env_id)
        hint = f"; use {' or '.join(working)}" if working else ""
        raise UserError(f"{env_id} cannot be built here ({str(err).split(' (')[0].split(', for more')[0]})"
                        f"{hint}") from None
    except gym.error.Error as err:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=10, cutoff=0.6)
        close = [name for name in close if can_build(gym, name)][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown environment {env_id!r} ({type(err).__name__}){hint}") from None
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise UserError(f"{env_id} has a {type(space).__name__} action space; TD3 needs a continuous (Box) one")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise UserError(f"{env_id} has an unbounded action space; TD3 squashes actions into finite bounds")
    if len(env.observation_space.shape or ()) != 1:
        raise UserError(f"{env_id} has observations of shape {env.observation_space.shape}; this MLP needs a vector")
    return env, gym


def can_build(gym, env_id):
    """Whether gymnasium can make env_id with the packages installed here."""
    try:
        gym.make(env_id).close()
        return True
    except Exception:                                    # any reason at all: then we do not suggest it
        return False


def buildable_versions(gym, env_id):
    """The other registered versions of a task that can be built here, e.g. Hopper-v3 -> [Hopper-v4, Hopper-v5]."""
    name = env_id.rsplit("-v", 1)[0]
    versions = sorted((key for key in gym.registry if key.rsplit("-v", 1)[0] == name and key != env_id),
                      key=lambda key: int(key.rsplit("-v", 1)[1]) if key.rsplit("-v", 1)[1].isdigit() else 0)
    return [key for key in versions if can_build(gym, key)]


def blas_kernel():
    """The CPU kernel that numpy's OpenBLAS runs (its own pick, or OPENBLAS_CORETYPE's), or "unknown".
    TRAP: kernels round differently, and RL amplifies the difference: HalfCheetah-v4 TD3 seed 0 evaluates to
    -315.30 at step 30,000 with the SkylakeX kernel and -326.71 with Haswell's, on the same machine. A run is
    repeated exactly only with the same versions and kernel, so config.json records it."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy*libs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)                      # the library numpy has loaded already
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            get_corename = getattr(lib, name, None)
            if get_corename is not None:
                get_corename.restype = ctypes.c_char_p
                return get_corename().decode()
    return "unknown"


def versions():
    import gymnasium
    try:
        import mujoco
        mujoco_version = mujoco.__version__
    except ImportError:
        mujoco_version = "not installed"
    return {"python": platform.python_version(), "numpy": np.__version__, "gymnasium": gymnasium.__version__,
            "mujoco": mujoco_version, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "blas_kernel": blas_kernel()}


# =============================================================================
# 13. Run folders and logs.
# =============================================================================
def format_duration(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def sparsity_of(net):
    present, dense = count_weights(net)
    return 1.0 - present / dense


def reproduce_command(argv):
    return "python dst_td3.py " + " ".join(shlex.quote(a) for a in argv)


def describe_run(agent, hp, args, argv, n_obs, n_act, act_lo, act_hi):
    """Weight and FLOP counts of this run and of dense TD3 with the same settings, and the config to save."""
    nets = [agent["actor"], agent["critic"]]
    run = {"params": sum(count_weights(n)[0] for n in nets), "params_dense": sum(count_weights(n)[1] for n in nets),
           "flops_iter": iteration_flops(agent["actor"], agent["critic"], hp["batch_size"], hp["policy_delay"])}
    dense = build_agent(n_obs, n_act, act_lo, act_hi, {**hp, "algo": "td3"}, np.random.default_rng(0))
    run["flops_iter_dense"] = iteration_flops(dense["actor"], dense["critic"], hp["batch_size"], hp["policy_delay"])
    masks = {f"{name}.W{l}": agent[name][f"M{l}"] for name in ("actor", "critic") for l in (1, 2)
             if f"M{l}" in agent[name]}
    run["densities"] = {layer: round(n_present(M) / M.size, 4) for layer, M in masks.items()}   # where Eq. 1 put them
    run["config"] = {"command": reproduce_command(argv), "args": vars(args), "versions": versions(),
                     "params_nonzero": run["params"], "params_dense": run["params_dense"],
                     "sparsity_actor": sparsity_of(agent["actor"]), "sparsity_critic": sparsity_of(agent["critic"]),
                     "flops_per_iteration": run["flops_iter"], "flops_per_iteration_dense": run["flops_iter_dense"],
                     "densities": run["densities"]}
    return run


OS_ADVICE = {errno.ENOSPC: "the disk is full: free some space, or pass --runs-dir on another disk",
             errno.EDQUOT: "the disk quota is used up: free some space, or pass --runs-dir on another disk",
             errno.EROFS: "the file system is read-only: pass --runs-dir on a writable disk",
             errno.ENOTDIR: "a file stands where a folder should be: pass another --runs-dir",
             errno.EEXIST: "a file stands where a folder should be: pass another --runs-dir",
             errno.EACCES: "permission denied: pass --runs-dir where you may write",
             errno.EPERM: "permission denied: pass --runs-dir where you may write"}


def os_failure(err, what, path):
    """A SystemFailure for an OSError: what we were doing, with which path, why, and what to do."""
    advice = OS_ADVICE.get(err.errno, err.strerror or str(err))
    return SystemFailure(f"could not {what} {path}: {advice}")


def write_atomically(path, write, mode="w"):
    """write(f) to a temporary file, then rename it over path: a crash or a full disk at any moment leaves the old
    file or the new one, never half of one, and no temporary file behind."""
    tmp = path + ".tmp"
    try:
        with open(tmp, mode, **({"newline": ""} if "b" not in mode else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def lock_run_dir(run_dir):
    """Hold an exclusive lock on RUN_DIR/run.lock until this process ends, so that no second process (a resume of a
    run that is still going, say) writes to the same folder. Returns the open lock file: keep it."""
    lock = open(os.path.join(run_dir, "run.lock"), "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        raise UserError(f"{run_dir} is being written by {holder}; wait for it to end, or stop it first") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"process {os.getpid()} on {platform.node()}")
    lock.flush()
    return lock


EVAL_FIELDS = ["step", "return_mean", "return_std", "episodes", "params_nonzero", "params_dense",
               "sparsity_actor", "sparsity_critic", "flops", "flops_vs_dense", "dormant_actor", "dormant_critic"]


def new_run_dir(run, args):
    """runs/<env>__<algo>__s<seed>__<time>/, made exclusively (a name already taken gets -2, -3, ...) and locked,
    with config.json and the header of eval.csv."""
    base = os.path.join(args.runs_dir, f"{args.env}__{args.algo}__s{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        if os.path.exists(args.runs_dir) and not os.path.isdir(args.runs_dir):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", args.runs_dir)
        os.makedirs(args.runs_dir, exist_ok=True)
        for n in itertools.count(1):
            run["dir"] = base if n == 1 else f"{base}-{n}"
            try:
                os.mkdir(run["dir"])                     # atomic: two runs started in one second get two folders
                break
            except FileExistsError:
                continue
        run["lock"] = lock_run_dir(run["dir"])
        run["config"]["run_dir"] = run["dir"]
        write_atomically(os.path.join(run["dir"], "config.json"), lambda f: json.dump(run["config"], f, indent=2))
        write_atomically(os.path.join(run["dir"], "eval.csv"), lambda f: csv.writer(f).writerow(EVAL_FIELDS))
    except OSError as err:
        raise os_failure(err, "create the run folder in", args.runs_dir) from None
    run["eval_fields"] = EVAL_FIELDS


def buffer_bytes(capacity, n_obs, n_act):
    """Bytes of a replay buffer: obs, act, rew, next_obs and terminated of every transition, in DTYPE."""
    return capacity * (2 * n_obs + n_act + 2) * np.dtype(DTYPE).itemsize


def check_memory(n_bytes, capacity):
    """Stop with one line before allocating a buffer that does not fit in the memory available now (Linux)."""
    try:
        with open("/proc/meminfo") as f:
            available = 1024 * int(next(line for line in f if line.startswith("MemAvailable:")).split()[1])
    except (OSError, StopIteration, ValueError, IndexError):
        return                                           # not Linux: numpy's MemoryError is caught in main
    if n_bytes > available:
        fits = capacity * available // n_bytes
        raise SystemFailure(f"the replay buffer needs {n_bytes / 1e9:.1f} GB ({capacity:,} transitions) but "
                            f"{available / 1e9:.1f} GB of memory is available: pass --buffer-size {fits:,} or less")


REDO_TAU = 0.1          # a unit is τ-dormant below this share of its layer's mean activation [ReDo]
DIAGNOSTIC_BATCH = 256  # replay states the diagnostics look at


def dormant_fraction(hidden, tau=REDO_TAU):
    """The fraction of τ-dormant units among the hidden layers [ReDo]: a unit whose mean |activation| over the
    batch, divided by the mean of that over its layer, is at most τ. hidden: [(..., B, H) ReLU outputs]."""
    dormant = total = 0
    for h in hidden:
        score = np.abs(h).mean(axis=-2)                  # (..., H) per unit, per critic twin
        score /= np.maximum(score.mean(axis=-1, keepdims=True), np.finfo(score.dtype).tiny)
        dormant += int(np.count_nonzero(score <= tau))
        total += score.size
    return dormant / total


def network_diagnostics(agent, buf, seed, step):
    """Dormant units of the actor and of the critics on a batch of replay states. The batch is drawn by a generator
    of its own, seeded by (seed, step), so that the run's generator, and with it the run, is untouched."""
    if buf["size"] == 0:
        return {"dormant_actor": float("nan"), "dormant_critic": float("nan")}
    idx = np.random.default_rng([seed, step]).integers(0, buf["size"], size=DIAGNOSTIC_BATCH)
    _, actor_cache = actor_forward(agent["actor"], buf["obs"][idx])
    _, critic_cache = critic_forward(agent["critic"], buf["obs"][idx], buf["act"][idx])
    return {"dormant_actor": dormant_fraction([actor_cache[1], actor_cache[3]]),     # h1, h2 (the ReLU caches)
            "dormant_critic": dormant_fraction([critic_cache[1], critic_cache[3]])}


def record_topology(agent, run, step):
    """Append to topology.csv how many connections each input keeps in the first layer of each sparse network:
    which observation features (and, for the critics, action entries) DS-TD3 keeps connected."""
    if "M1" not in agent["actor"]:
        return                                           # dense TD3: every input keeps all H connections
    n_obs = agent["actor"]["M1"].shape[0]
    n_act = agent["critic"]["M1"].shape[1] - n_obs
    path = os.path.join(run["dir"], "topology.csv")
    rows = [[step, "actor", *agent["actor"]["M1"].sum(axis=1).astype(int)]]
    rows += [[step, f"critic{j + 1}", *M.sum(axis=1).astype(int)] for j, M in enumerate(agent["critic"]["M1"])]
    try:
        new = not os.path.exists(path)
        with open(path, "a", newline="") as f:
            if new:
                csv.writer(f).writerow(["step", "network"] + [f"obs_{i}" for i in range(n_obs)]
                                       + [f"act_{i}" for i in range(n_act)])
            csv.writer(f).writerows(rows)
    except OSError as err:
        raise os_failure(err, "append to", path) from None


def print_header(run, args, agent, buf):
    print(f"command: {run['config']['command']}", flush=True)
    print("args: " + " ".join(f"{k}={v}" for k, v in vars(args).items()), flush=True)
    print("versions: " + " ".join(f"{k}={v}" for k, v in versions().items()), flush=True)
    print(f"params: nonzero={run['params']} dense={run['params_dense']} "
          f"({run['params'] / run['params_dense']:.1%} of dense) "
          f"sparsity_actor={sparsity_of(agent['actor']):.3f} sparsity_critic={sparsity_of(agent['critic']):.3f} "
          f"flops_per_iteration={run['flops_iter']:.3e} ({run['flops_iter'] / run['flops_iter_dense']:.2f}x dense)",
          flush=True)
    if run["densities"]:                                 # where Eq. 1 (or --distribution) put the weights
        print("densities: " + " ".join(f"{k}={p:.3f}" for k, p in run["densities"].items()), flush=True)
    for layer, p in run["densities"].items():
        if p == 1.0:                                     # Eq. 1 capped at 1: this layer trains dense
            flag = "--lambda-in" if layer.endswith("W1") else "--lambda-hidden"
            print(f"warning: {layer} is dense (density 1.000), as Eq. 1's probability reaches 1 for it; a smaller "
                  f"{flag} keeps it sparse, as do more inputs (Ant-v5 has 105, Ant-v4 27)", flush=True)
    n_bytes = buffer_bytes(buf["capacity"], buf["obs"].shape[1], buf["act"].shape[1])
    print(f"replay_buffer: capacity={buf['capacity']} bytes={n_bytes} ({n_bytes / 1e6:.0f} MB)", flush=True)
    print(f"run_dir: {run['dir']}", flush=True)


def record_evaluation(returns, agent, buf, rng, env, loop, run, args):
    """One evaluation: a line to stdout and a row to eval.csv, then a checkpoint (if the weights are finite)."""
    step = loop["step"]
    loop["last_eval"] = float(returns.mean())
    flops = loop["flops"]
    ratio = flops / loop["flops_dense"] if loop["flops_dense"] else run["flops_iter"] / run["flops_iter_dense"]
    params = sum(count_weights(agent[name])[0] for name in ("actor", "critic"))   # fewer after a drop-only update
    row = {"step": step, "return_mean": f"{returns.mean():.2f}", "return_std": f"{returns.std():.2f}",
           "episodes": args.eval_episodes, "params_nonzero": params, "params_dense": run["params_dense"],
           "sparsity_actor": f"{sparsity_of(agent['actor']):.4f}",
           "sparsity_critic": f"{sparsity_of(agent['critic']):.4f}", "flops": f"{flops:.4e}",
           "flops_vs_dense": f"{ratio:.4f}"}
    dormant = network_diagnostics(agent, buf, args.seed, step)
    row.update({key: f"{value:.4f}" for key, value in dormant.items()})
    path = os.path.join(run["dir"], "eval.csv")
    try:
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, run["eval_fields"], extrasaction="ignore").writerow(row)
    except OSError as err:
        raise os_failure(err, "append to", path) from None
    print(f"eval step={step} return_mean={returns.mean():.1f} return_std={returns.std():.1f} "
          f"episodes={args.eval_episodes} params={params}/{run['params_dense']} "
          f"flops={flops:.3e} flops_vs_dense={ratio:.2f} dormant_actor={dormant['dormant_actor']:.3f} "
          f"dormant_critic={dormant['dormant_critic']:.3f}", flush=True)
    record_topology(agent, run, step)
    bad = first_non_finite(agent)
    if bad is not None:                                  # never overwrite a good checkpoint with a broken one
        raise TrainingStopped(f"the {bad} has non-finite weights at step {step}; " + last_good(run["checkpoint"]))
    save_checkpoint(run["checkpoint"], agent, buf, rng, env, loop, run["config"], args.save_buffer)


def probe_iteration_seconds(n_obs, n_act, act_lo, act_hi, hp, n_iterations=20):
    """Seconds per training iteration, timed on a throwaway agent and buffer with a generator of their own (the
    run's generator is untouched): what the progress line's ETA uses until training has been measured."""
    rng = np.random.default_rng(0)
    agent = build_agent(n_obs, n_act, act_lo, act_hi, hp, rng)
    buf = buffer_init(hp["batch_size"], n_obs, n_act)
    for _ in range(hp["batch_size"]):
        buffer_add(buf, rng.standard_normal(n_obs), rng.uniform(act_lo, act_hi), 0.0, rng.standard_normal(n_obs), 0)
    t0 = time.perf_counter()
    for i in range(1, n_iterations + 1):
        train_iteration(agent, buf, i, hp, rng)
    return (time.perf_counter() - t0) / n_iterations


def print_progress(step, args, loop, log, agent, clock):
    """One key=value progress line: the speed of the last interval, the warm-up and training speeds of this
    session so far, and the time left (during the warm-up: estimated from a timed probe of the iteration)."""
    now = time.perf_counter()
    sps = args.log_every / (now - clock["last_log"])
    clock["last_log"] = now
    S, T = args.learning_starts, args.total_steps
    speeds = ""
    warm_steps = min(step, S) - min(clock["start_step"], S)
    if warm_steps > 0:
        warmup_sps = warm_steps / ((clock["warmup_end"] or now) - clock["start"])
        speeds += f" warmup_sps={warmup_sps:.0f}"
    if step > S:
        train_start = clock["warmup_end"] or clock["start"]
        train_sps = (step - max(S, clock["start_step"])) / (now - train_start)
        speeds += f" train_sps={train_sps:.0f}"
        eta = (T - step) / train_sps
    else:                                                # warm-up: its own speed, then the probe's estimate
        eta = (S - step) / warmup_sps + (T - S) * (clock["probe"] + 1 / warmup_sps)
    losses = "".join(f" {k}={log[k]:.4g}" for k in ("loss_q", "loss_pi", "q1") if k in log)
    print(f"step={step}/{T} ({step / T:.1%}) sps={sps:.0f}{speeds} eta={format_duration(eta)} "
          f"last_eval={loop['last_eval']:.1f}{losses} sparsity_actor={sparsity_of(agent['actor']):.3f} "
          f"sparsity_critic={sparsity_of(agent['critic']):.3f}", flush=True)


def print_topology(out, step, agent, hp):
    layers = {**{f"actor.{k}": v for k, v in out["topology_actor"].items()},
              **{f"critic.{k}": v for k, v in out["topology_critic"].items()}}
    drop_only = topology_due(step - hp["learning_starts"], hp) == "drop"
    print(f"topology step={step} iteration={step - hp['learning_starts']} "
          + " ".join(f"{k}=-{v}/+{0 if drop_only else v}" for k, v in layers.items())
          + f" sparsity_actor={sparsity_of(agent['actor']):.3f}"
          + f" sparsity_critic={sparsity_of(agent['critic']):.3f}"
          + (" (the last update: drop only)" if drop_only else ""), flush=True)


def check_losses(log, step, run):
    for key, network in (("loss_q", "critic"), ("loss_pi", "actor")):
        if key in log and not math.isfinite(log[key]):
            raise TrainingStopped(f"the {network} loss became {log[key]} at step {step}; "
                                  + last_good(run["checkpoint"]))


# =============================================================================
# 14. Checkpoints, resume and signals.
# =============================================================================
CHECKPOINT = "checkpoint.npz"
BUFFER_KEYS = ("obs", "act", "rew", "next_obs", "terminated")


def env_snapshot(env):
    """What it takes to continue the training env mid-episode exactly: its random generator (used by reset),
    the time-limit counter, and the simulator state: MuJoCo's whole integration state (including the solver's
    warm start, which a plain qpos/qvel copy would miss) or a classic-control task's `state` vector."""
    u = env.unwrapped
    snap = {"env/rng": np.array(json.dumps(u.np_random.bit_generator.state)),
            "env/elapsed_steps": np.array(env.get_wrapper_attr("_elapsed_steps"))}
    if hasattr(u, "model") and hasattr(u, "data"):
        import mujoco
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        snap["env/mujoco_state"] = np.empty(mujoco.mj_stateSize(u.model, spec))
        mujoco.mj_getState(u.model, u.data, snap["env/mujoco_state"], spec)
    elif isinstance(getattr(u, "state", None), np.ndarray):
        snap["env/state"] = u.state.copy()
    return snap


def env_restore(env, data):
    """Undo env_snapshot on an env that has been reset. False if the task's state could not be restored."""
    u = env.unwrapped
    u.np_random.bit_generator.state = json.loads(str(data["env/rng"]))
    env.set_wrapper_attr("_elapsed_steps", int(data["env/elapsed_steps"]))
    if "env/mujoco_state" in data and hasattr(u, "data"):
        import mujoco
        mujoco.mj_setState(u.model, u.data, data["env/mujoco_state"], mujoco.mjtState.mjSTATE_INTEGRATION)
        return True
    if "env/state" in data and isinstance(getattr(u, "state", None), np.ndarray):
        u.state = data["env/state"].copy()
        return True
    return False


def in_checkpoint(key):
    """Adam's scratch vectors g_*, tmp_flat carry no state, and a flat vector holds the same numbers as its arrays."""
    return not key.startswith("g_") and not key.endswith("flat")


def save_checkpoint(path, agent, buf, rng, env, loop, config, save_buffer):
    """Everything a run needs to continue, as one .npz (plain arrays and JSON strings: no pickle).

    Written atomically (write_atomically): a crash or a full disk at any moment leaves the old checkpoint or
    the new one, never half of one."""
    arrays = {f"{name}/{key}": np.asarray(value) for name in NETWORKS for key, value in agent[name].items()
              if in_checkpoint(key)}
    arrays.update({f"loop/{key}": np.asarray(value) for key, value in loop.items()})
    arrays.update(env_snapshot(env))
    arrays["rng"] = np.array(json.dumps(rng.bit_generator.state))
    arrays["config"] = np.array(json.dumps(config))
    if save_buffer:
        arrays.update({f"buffer/{key}": buf[key][:buf["size"]] for key in BUFFER_KEYS})
        arrays["buffer/ptr"], arrays["buffer/size"] = np.array(buf["ptr"]), np.array(buf["size"])
    try:
        write_atomically(path, lambda f: np.savez(f, **arrays), mode="wb")
    except OSError as err:
        kept = "the previous checkpoint is kept" if os.path.exists(path) else "no checkpoint was kept"
        raise SystemFailure(f"{os_failure(err, 'write the checkpoint', path)}; {kept}") from None


def load_checkpoint(path):
    """The arrays of a checkpoint, with a one-line error if it is missing, truncated or corrupt."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
        json.loads(str(data["config"]))
        data["actor/W1"], data["actor/W3"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({type(err).__name__})") from None
    return data


def restore_agent(agent, data, path):
    """Copy a checkpoint's arrays into a freshly built agent of the same configuration, checking every shape."""
    for name in NETWORKS:
        for key in agent[name]:
            if not in_checkpoint(key):
                continue
            saved = data.get(f"{name}/{key}")
            if saved is None or np.shape(saved) != np.shape(agent[name][key]):
                raise UserError(f"checkpoint {path} does not match this configuration ({name}/{key})")
            if key == "t":
                agent[name][key] = int(saved)
            else:
                agent[name][key][...] = saved


def check_checkpoint_sizes(data, n_obs, n_act, env_id, path):
    saved_obs, saved_act = data["actor/W1"].shape[0], data["actor/W3"].shape[1]
    if (saved_obs, saved_act) != (n_obs, n_act):
        saved_env = json.loads(str(data["config"]))["args"]["env"]
        raise UserError(f"checkpoint {path} was made for {saved_env} ({saved_obs} observations, {saved_act} "
                        f"actions) but {env_id} has {n_obs} and {n_act}: pass --env {saved_env}")


def first_non_finite(agent):
    """Name of the first network with a NaN or infinite weight, or None."""
    for name in ("actor", "critic", "actor_targ", "critic_targ"):
        if not np.isfinite(agent[name]["flat"]).all():    # every weight and bias of the network (with_flat)
            return name
    return None


def last_good(ckpt_path):
    """The end of a TrainingStopped message: where the last good checkpoint is, if any."""
    if os.path.isfile(ckpt_path):
        return f"the last good checkpoint is {ckpt_path}"
    return "no checkpoint had been written yet"


def install_stop_handlers():
    """Ctrl-C (SIGINT) and SIGTERM only raise a flag: the loop finishes its step, saves and exits cleanly."""
    stop = {"signal": None}

    def handler(signum, frame):
        stop["signal"] = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    return stop, previous




def resume_from(data, agent, buf, rng, env, loop, run):
    """Load a checkpoint into the freshly built run: networks, generator, buffer, env and loop state."""
    restore_agent(agent, data, run["checkpoint"])
    rng.bit_generator.state = json.loads(str(data["rng"]))
    loop["step"], loop["last_eval"] = int(data["loop/step"]), float(data["loop/last_eval"])
    saved = run["config"]["args"]
    run["flops_iter"] = iteration_flops(agent["actor"], agent["critic"], saved["batch_size"], saved["policy_delay"])
    run["params"] = sum(count_weights(agent[name])[0] for name in ("actor", "critic"))   # after a drop-only update
    iterations = max(0, loop["step"] - saved["learning_starts"])
    loop["flops_dense"] = float(data.get("loop/flops_dense", iterations * run["flops_iter_dense"]))
    loop["flops"] = float(data["loop/flops"]) if "loop/flops" in data else None   # older checkpoints: eval.csv
    if "buffer/size" in data:
        size = int(data["buffer/size"])
        for key in BUFFER_KEYS:
            buf[key][:size] = data[f"buffer/{key}"]
        # TRAP: a run extended with --total-steps may have a larger buffer now; one that was full at its old
        # capacity (pointer back at 0) goes on filling after its last transition, not over its first
        buf["ptr"] = int(data["buffer/ptr"]) if size == buf["capacity"] else size
        buf["size"] = size
    else:
        print("resume: the replay buffer was not saved (--save-buffer), so it refills from now on; "
              "the resumed run will differ from an uninterrupted one", flush=True)
    loop["obs"] = data["loop/obs"]
    if not env_restore(env, data):
        loop["obs"] = env.reset()[0]
        print("resume: this task's state cannot be restored, so a new episode starts", flush=True)
    run["eval_fields"] = clean_eval_csv(os.path.join(run["dir"], "eval.csv"), loop["step"])
    if loop["flops"] is None:                            # a checkpoint older than loop/flops: the row of its step
        loop["flops"] = flops_at(os.path.join(run["dir"], "eval.csv"), loop["step"], iterations * run["flops_iter"])
    clean_topology_csv(os.path.join(run["dir"], "topology.csv"), loop["step"])
    print(f"resume: continuing {run['dir']} after step {loop['step']}", flush=True)


def clean_eval_csv(path, last_step):
    """Make eval.csv hold exactly the evaluations up to the checkpoint's step, rewritten atomically, and return its
    columns. Rows after that step (written after the checkpoint, before a crash) would be repeated, and blank or
    malformed ones would break every reader: both are left out, the malformed ones with a warning. A missing
    eval.csv is started anew, with a warning."""
    if not os.path.exists(path):
        print(f"resume: warning: {path} was missing; a new one starts with the evaluations after step "
              f"{last_step}", flush=True)
        write_atomically(path, lambda f: csv.writer(f).writerow(EVAL_FIELDS))
        return EVAL_FIELDS
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    fields = rows[0] if rows and rows[0][:1] == ["step"] else EVAL_FIELDS   # the file's own columns, if any
    body = rows[1:] if rows and rows[0][:1] == ["step"] else rows
    good = [row for row in body if is_eval_row(row, fields)]
    if len(good) < len(body):
        print(f"resume: warning: left out {len(body) - len(good)} blank or malformed rows of {path}", flush=True)
    kept = [row for row in good if int(row[0]) <= last_step]
    write_atomically(path, lambda f: csv.writer(f).writerows([fields] + kept))
    return fields


def flops_at(path, step, estimate):
    """The training FLOPs that eval.csv records at `step`, or the estimate if it has no such row."""
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("step") == str(step) and row.get("flops")]
    return float(rows[-1]["flops"]) if rows else estimate


def clean_topology_csv(path, last_step):
    """topology.csv keeps its rows up to the checkpoint's step, as eval.csv does (rewritten atomically)."""
    if os.path.exists(path):
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [row for row in rows[1:] if row and row[0].isdigit() and int(row[0]) <= last_step]
        write_atomically(path, lambda f: csv.writer(f).writerows(rows[:1] + kept))


def is_eval_row(row, fields):
    """A row of eval.csv with one number per column (the step an integer)."""
    try:
        int(row[0])
        [float(value) for value in row]
        return len(row) == len(fields)
    except (ValueError, IndexError):
        return False


# =============================================================================
# 15. Profiling (--profile): Part I's phase functions, wrapped in timers for one run.
# =============================================================================
PHASES = {"acting": ["explore"], "sample batch": ["buffer_sample"], "critic update": ["td3_target", "critic_step"],
          "topology update": ["topology_update"], "actor update": ["actor_step"], "target update": ["soft_update"],
          "maintain sparsity": ["target_maintain_sparsity"], "flush subnormals": ["flush_subnormals"],
          "evaluation": ["evaluate"]}
ITERATION_PHASES = ("sample batch", "critic update", "topology update", "actor update", "target update",
                    "maintain sparsity", "flush subnormals")


def install_profiler(env):
    """Replace each phase function of PHASES (and env.step) by a timed version that adds its seconds to
    prof[phase]. Part I calls its functions by name, so it runs the timed ones without knowing. Returns
    (prof, originals); remove_profiler(originals) puts the functions back."""
    prof, module = {}, globals()

    def timed(phase, function):
        def timed_function(*arguments, **keywords):
            t0 = time.perf_counter()
            try:
                return function(*arguments, **keywords)
            finally:
                prof[phase] = prof.get(phase, 0.0) + time.perf_counter() - t0
        return timed_function

    originals = {name: module[name] for names in PHASES.values() for name in names}
    for phase, names in PHASES.items():
        for name in names:
            module[name] = timed(phase, originals[name])
    env.step = timed("env step", env.step)               # the training env only; evaluation has its own env
    return prof, originals


def remove_profiler(originals):
    globals().update(originals)


def print_profile(prof, wall, n_iterations):
    """Share of the wall time per phase of the run (--profile; README, Speed)."""
    print("profile: phase share_of_wall seconds", flush=True)
    for phase, seconds in sorted(prof.items(), key=lambda kv: -kv[1]):
        print(f"profile: {phase:<18s} {seconds / wall:6.1%} {seconds:9.2f}s", flush=True)
    other = wall - sum(prof.values())
    print(f"profile: {'other (logging)':<18s} {other / wall:6.1%} {other:9.2f}s", flush=True)
    iterations = sum(prof.get(phase, 0.0) for phase in ITERATION_PHASES)
    if n_iterations:
        print(f"profile: {n_iterations} training iterations, {iterations / n_iterations * 1e3:.3f} ms each",
              flush=True)


# =============================================================================
# 16. Evaluating a saved policy (--load CHECKPOINT --eval-only).
# =============================================================================
def eval_only(args, argv):
    """Evaluate a saved policy, deterministically, and print mean ± std. --load takes a checkpoint or a run folder;
    the task is the checkpoint's unless --env is given."""
    if not (args.load and args.eval_only):
        raise UserError("--load and --eval-only go together; to continue a run use --resume RUN_DIR")
    check_args(args)
    if args.render and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--render needs a display, and none was found (DISPLAY is not set); "
                        "drop --render to evaluate without a window")
    path = os.path.join(args.load, CHECKPOINT) if os.path.isdir(args.load) else args.load
    data = load_checkpoint(path)
    saved = json.loads(str(data["config"]))["args"]
    env_id = args.env if "env" in flags_given(argv) else saved["env"]
    env, _ = make_env(env_id, render_mode="human" if args.render else None)
    check_checkpoint_sizes(data, env.observation_space.shape[0], env.action_space.shape[0], env_id, path)
    actor = {key.split("/", 1)[1]: value for key, value in data.items() if key.startswith("actor/")}
    returns = evaluate(actor, env, args.eval_episodes, saved["seed"] + 100)
    print(f"eval_only checkpoint={path} env={env_id} episodes={args.eval_episodes} "
          f"return_mean={returns.mean():.2f} return_std={returns.std():.2f} "
          f"(mean ± std: {returns.mean():.1f} ± {returns.std():.1f})", flush=True)
    env.close()
    return 0


# =============================================================================
# 17. The run report (--report): the paper's metrics over seeds, and the learning curves as an SVG figure.
#     A *comparison* is the runs of one env planned for one length T; its rows are the algorithms and the lab's
#     settings, and each comparison gets a panel of the figure.
# =============================================================================
# [DS-TD3, Fig. 2], read off the curves by eye (±10-15 %; gym v3, mean of 5 seeds): {(task, algo): {step: return}}
PAPER_CURVES = {
    ("HalfCheetah", "ds-td3"): {50_000: 4500, 100_000: 7200, 150_000: 8600, 200_000: 9400, 250_000: 9900,
                                300_000: 10100},
    ("HalfCheetah", "static-td3"): {50_000: 4200, 100_000: 6600, 150_000: 7700, 200_000: 8200, 250_000: 8500,
                                    300_000: 8800},
    ("HalfCheetah", "td3"): {50_000: 4000, 100_000: 6000, 150_000: 7300, 200_000: 8000, 250_000: 8400,
                             300_000: 8700},
    ("Walker2d", "ds-td3"): {50_000: 300, 100_000: 450, 150_000: 700, 200_000: 1400, 250_000: 2700, 300_000: 3500},
    ("Walker2d", "td3"): {50_000: 300, 100_000: 400, 150_000: 550, 200_000: 900, 250_000: 1300, 300_000: 1900},
    ("Hopper", "ds-td3"): {50_000: 400, 100_000: 900, 150_000: 1600, 200_000: 2200, 250_000: 2800, 300_000: 3000},
    ("Hopper", "td3"): {50_000: 400, 100_000: 900, 150_000: 1500, 200_000: 2000, 250_000: 2500, 300_000: 2700},
}
ALGOS = ("ds-td3", "static-td3", "td3")                  # the report's order
VARIANT_FLAGS = ("sparsity", "distribution", "grow", "drop_schedule")   # the lab's: a run that sets one is its own row
COLOURS = {"ds-td3": "#d62728", "static-td3": "#2ca02c", "td3": "#1f77b4"}
VARIANT_COLOURS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")  # then the lab's rows
NOT_SETTINGS = {"seed", "total_steps", "runs_dir", "resume", "log_every", "profile", "save_buffer", "load",
                "eval_only", "render", "report", "figure"}   # flags that do not change what a run learns
LAST_EVALS = 10                                          # the paper's final return: the mean of the last 10


def report_warning(message):
    print(f"report: warning: {message}", file=sys.stderr, flush=True)


def read_run(path):
    """One run folder: its arguments and its evaluations as arrays, or None (with a warning) if it has none."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        args = config["args"]
        args["env"], args["algo"]
    except (OSError, ValueError, KeyError, TypeError):
        report_warning(f"{path} is not a run (no readable config.json); left out")
        return None
    try:
        with open(os.path.join(path, "eval.csv"), newline="") as f:
            rows = list(csv.reader(f))
    except OSError:
        rows = []
    fields = rows[0] if rows else EVAL_FIELDS
    good = [dict(zip(fields, row)) for row in rows[1:] if is_eval_row(row, fields)]
    if len(good) < len(rows) - 1:
        report_warning(f"left out {len(rows) - 1 - len(good)} blank or malformed rows of {path}/eval.csv")
    if not good:
        report_warning(f"{path} has no evaluations yet; left out")
        return None
    return {"dir": path, "args": args, "params": config.get("params_nonzero"),
            "steps": np.array([int(row["step"]) for row in good]),
            "returns": np.array([float(row["return_mean"]) for row in good]),
            "flops_vs_dense": float(good[-1].get("flops_vs_dense", "nan")),
            "dormant": np.array([[float(row.get(f"dormant_{net}", "nan")) for net in ("actor", "critic")]
                                 for row in good])}                  # (evaluations, 2); NaN before ReDo was logged


def read_runs(folders):
    """Every run folder below the given folders (a folder with a config.json or an eval.csv)."""
    runs = []
    for top in folders:
        if not os.path.isdir(top):
            report_warning(f"{top} is not a folder; left out")
            continue
        found = [path for path, _, files in sorted(os.walk(top)) if {"config.json", "eval.csv"} & set(files)]
        if not found:
            report_warning(f"no run folders below {top}")
        runs += [run for run in map(read_run, found) if run is not None]
    return runs


def run_label(args, defaults):
    """A row's name: the algorithm, then each of the lab's flags that the run set away from its default."""
    changed = [f"{key}={args[key]}" for key in VARIANT_FLAGS if args.get(key, defaults[key]) != defaults[key]]
    return " ".join([args["algo"], *changed])


def group_runs(runs):
    """{(env, T, label): [runs]} in the report's order. The runs of one env and one planned length T (a
    *comparison*) are compared with each other, one row per label. A group whose runs differ in a setting other
    than the lab's gets a warning."""
    defaults = vars(make_parser().parse_args([]))      # a run older than a flag ran with its default
    groups = {}
    for run in sorted(runs, key=lambda r: r["args"]["seed"]):
        args = run["args"]
        key = (args["env"], args.get("total_steps", defaults["total_steps"]), run_label(args, defaults))
        groups.setdefault(key, []).append(run)
    order = sorted(groups, key=lambda k: (k[0], -k[1], ALGOS.index(k[2].split()[0]), k[2]))   # longest runs first
    groups = {key: groups[key] for key in order}
    for (env, _, label), members in groups.items():
        for key in sorted(set().union(*(m["args"] for m in members)) - NOT_SETTINGS):
            values = sorted({json.dumps(m["args"].get(key, defaults.get(key))) for m in members})
            if len(values) > 1:
                report_warning(f"{env} {label}: the runs differ in {key} ({', '.join(values)}); compared anyway")
    return groups


def comparison_names(groups):
    """{(env, T): its name}: the env, and T too where the env has runs of more than one planned length."""
    lengths = {}
    for env, T, _ in groups:
        lengths.setdefault(env, set()).add(T)
    return {(env, T): env if len(lengths[env]) == 1 else f"{env}, T = {T:,}" for env, T, _ in groups}


def group_curve(members, cut):
    """The evaluations of a group up to step `cut`, at the steps every run has: (steps, returns (runs, steps))."""
    steps = sorted(set.intersection(*(set(m["steps"][m["steps"] <= cut].tolist()) for m in members)))
    returns = np.array([[m["returns"][m["steps"] == s][0] for s in steps] for m in members])
    return np.array(steps), returns


def group_metrics(members, cut):
    """The paper's metrics of one group up to step `cut` [DS-TD3, Table 2 and Sec. 5]."""
    steps, returns = group_curve(members, cut)
    final = returns[:, -LAST_EVALS:].mean(axis=1)        # per seed: the mean of its last 10 evaluations
    area = returns.mean(axis=1)                          # per seed: the learning-curve area, unnormalised
    params = [m["params"] for m in members if m["params"] is not None]
    dormant = np.mean([m["dormant"][m["steps"] <= steps[-1]][-1] for m in members], axis=0)   # at the last step
    return {"seeds": len(members), "steps": int(steps[-1]) if steps.size else 0, "curve_steps": steps,
            "curve_mean": returns.mean(axis=0), "curve_std": returns.std(axis=0),
            "final": (final.mean(), final.std()), "area": (area.mean(), area.std()),
            "params": np.mean(params) if params else float("nan"),
            "flops_vs_dense": np.mean([m["flops_vs_dense"] for m in members]), "dormant": dormant}


def reaches(metrics, target):
    """The first step at which the seed-mean curve reaches `target`, or None."""
    hit = np.flatnonzero(metrics["curve_mean"] >= target)
    return int(metrics["curve_steps"][hit[0]]) if hit.size else None


def print_report(metrics, names):
    """The table, one row per group, in Markdown (README, Results). metrics: {(env, T, label): group_metrics}."""
    print("| env | algorithm | seeds | steps | final return (last 10 evals) | learning-curve area (mean of all evals) "
          "| reaches TD3's final return at | nonzero weights | training FLOPs vs dense "
          "| dormant units at the end (actor / critics) | paper at this step (Fig. 2) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (env, T, label), m in metrics.items():
        dense = metrics.get((env, T, "td3"))
        target = dense["final"][0] if dense else None
        step = reaches(m, target) if target is not None else None
        when = ("—" if target is None else "not reached" if step is None
                else f"{step:,} ({step / m['steps']:.0%} of the steps)")
        paper = PAPER_CURVES.get((env.split("-")[0], label), {}).get(m["steps"])    # the paper's rows only
        paper = "—" if paper is None else f"{paper:,}"
        dormant = "—" if np.isnan(m["dormant"]).any() else f"{m['dormant'][0]:.2f} / {m['dormant'][1]:.2f}"
        print(f"| {names[env, T]} | {label} | {m['seeds']} | {m['steps']:,} "
              f"| {m['final'][0]:.0f} ± {m['final'][1]:.0f} | {m['area'][0]:.0f} ± {m['area'][1]:.0f} | {when} "
              f"| {m['params']:,.0f} | {m['flops_vs_dense']:.2f}× | {dormant} | {paper} |", flush=True)


def nice_ticks(lo, hi, n=5):
    """About n round numbers (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    raw = (hi - lo) / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= raw)
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def svg_panel(name, curves, colours, x0, width=340, height=250, left=55, top=30, bottom=40):
    """One panel: axes, ticks and, per row of the report, the seed-mean curve and a ±1 std band, in pixels, with
    a legend below. Each curve also carries the numbers it was drawn from (data-points: step,return pairs), so
    that a reader can check it."""
    x_max = max(c["curve_steps"][-1] for c in curves.values())
    y_lo = min((c["curve_mean"] - c["curve_std"]).min() for c in curves.values())
    y_hi = max((c["curve_mean"] + c["curve_std"]).max() for c in curves.values())
    pad = 0.05 * (y_hi - y_lo) or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    plot_w, plot_h = width - left - 25, height - top - bottom
    px, py = x0 + left, top + plot_h                     # the pixel of the data point (0, y_lo)

    def xy(step, ret):                                   # data -> pixels; the y axis points down in SVG
        return f"{px + step * plot_w / x_max:.1f},{py - (ret - y_lo) * plot_h / (y_hi - y_lo):.1f}"

    out = [f'<g id="panel-{name}">', f'<text x="{px + plot_w / 2}" y="{top - 10}" text-anchor="middle">{name}</text>',
           f'<rect x="{px}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>',
           f'<text x="{px + plot_w / 2}" y="{py + 32}" text-anchor="middle">environment steps</text>']
    for t in nice_ticks(0, x_max, 4):
        x, _ = xy(t, y_lo).split(",")
        out.append(f'<line x1="{x}" y1="{py}" x2="{x}" y2="{py + 4}" stroke="#444"/>'
                   f'<text x="{x}" y="{py + 16}" text-anchor="middle">{t / 1000:g}k</text>')
    for t in nice_ticks(y_lo, y_hi):
        _, y = xy(0, t).split(",")
        out.append(f'<line x1="{px - 4}" y1="{y}" x2="{px}" y2="{y}" stroke="#444"/>'
                   f'<text x="{px - 6}" y="{float(y) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, (label, c) in enumerate(curves.items()):
        steps, mean, std = c["curve_steps"], c["curve_mean"], c["curve_std"]
        band = ([xy(s, r) for s, r in zip(steps, mean + std)]                         # the upper edge, forwards
                + [xy(s, r) for s, r in zip(steps[::-1], (mean - std)[::-1])])         # the lower edge, back
        out.append(f'<polygon id="{name}/{label}/band" fill="{colours[label]}" fill-opacity="0.2" stroke="none" '
                   f'points="{" ".join(band)}"/>')
        out.append(f'<polyline id="{name}/{label}/mean" fill="none" stroke="{colours[label]}" stroke-width="1.5" '
                   f'points="{" ".join(xy(s, r) for s, r in zip(steps, mean))}" '
                   f'data-points="{" ".join(f"{s},{r:.2f}" for s, r in zip(steps, mean))}"/>')
        y = height + 10 + 14 * i                         # the legend: one line per curve, below the panel
        out.append(f'<line x1="{px}" y1="{y - 4}" x2="{px + 20}" y2="{y - 4}" stroke="{colours[label]}" '
                   f'stroke-width="2"/><text x="{px + 25}" y="{y}">{label}</text>')
    return out + ["</g>"]


def write_figure(path, panels, width=340, height=250):
    """The SVG figure: one panel per comparison, each with its legend, as text (no plotting library). The
    paper's three algorithms keep one colour each; the lab's rows take the next free ones."""
    labels = dict.fromkeys(label for curves in panels.values() for label in curves)
    variants = [label for label in labels if label not in COLOURS]
    colours = {**COLOURS, **{label: VARIANT_COLOURS[i % len(VARIANT_COLOURS)] for i, label in enumerate(variants)}}
    legend_h = 14 * max(len(curves) for curves in panels.values())
    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(panels)}" '
             f'height="{height + legend_h + 25}" font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="55" y="{height + legend_h + 18}">evaluation return, mean over seeds ± 1 std</text>']
    for i, (name, curves) in enumerate(panels.items()):
        lines += svg_panel(name, curves, colours, i * width, width, height)
    lines.append("</svg>")
    write_atomically(path, lambda f: f.write("\n".join(lines) + "\n"))


def report(folders, figure):
    """--report: read every run below the folders, print the table and write the figure. Returns the exit code."""
    groups = group_runs(read_runs(folders))
    names = comparison_names(groups)
    ends = {}                                            # per comparison (env, T): the last step of each run
    for (env, T, _), members in groups.items():
        ends.setdefault((env, T), []).extend(int(run["steps"][-1]) for run in members)
    cuts = {comparison: min(last) for comparison, last in ends.items()}
    for comparison, last in ends.items():
        if max(last) > cuts[comparison]:
            report_warning(f"{names[comparison]}: the runs end between step {cuts[comparison]:,} and {max(last):,}; "
                           f"all are compared up to step {cuts[comparison]:,}, the shortest")
    for (env, T, label), members in list(groups.items()):
        if not group_curve(members, cuts[env, T])[0].size:   # e.g. two --eval-every values that never meet
            report_warning(f"{names[env, T]} {label}: the runs share no evaluation step; left out")
            del groups[env, T, label]
    if not groups:
        raise UserError(f"no runs with evaluations below {', '.join(folders)}")
    metrics = {(env, T, label): group_metrics(members, cuts[env, T]) for (env, T, label), members in groups.items()}
    print_report(metrics, names)
    panels = {}
    for (env, T, label), m in metrics.items():
        panels.setdefault(names[env, T], {})[label] = m
    figure = figure or os.path.join(folders[0], "report.svg")
    try:
        write_figure(figure, panels)
    except OSError as err:
        raise os_failure(err, "write the figure", figure) from None
    print(f"figure: {figure}", flush=True)
    return 0


# =============================================================================
# 18. main: build the run, watch the training loop of Part I, and report.
# =============================================================================
def flags_given(argv):
    """The flags written on the command line (as argparse dests), in either form: --flag value or --flag=value."""
    given = set()
    for action in make_parser()._actions:
        if any(arg == opt or arg.startswith(opt + "=") for opt in action.option_strings for arg in argv):
            given.add(action.dest)
    return given


def resumed_args(args, argv):
    """The configuration of the run in RUN_DIR, locked against a second writer. --total-steps may extend the run;
    any other flag is an error, since the run keeps the settings it started with."""
    extra = sorted(flags_given(argv) - {"resume", "total_steps"})
    if extra:
        raise UserError(f"--resume keeps every setting of the run's config.json; only --total-steps may extend it "
                        f"(drop {', '.join('--' + name.replace('_', '-') for name in extra)}, or start a new run)")
    if not os.path.isdir(args.resume):
        raise UserError(f"run folder {args.resume} does not exist")
    try:
        lock = lock_run_dir(args.resume)                 # before anything in the folder is read or changed
    except OSError as err:
        raise os_failure(err, "lock the run folder", args.resume) from None
    data = load_checkpoint(os.path.join(args.resume, CHECKPOINT))
    config = json.loads(str(data["config"]))
    saved = {**vars(make_parser().parse_args([])), **config["args"], "resume": args.resume}
    if "total_steps" in flags_given(argv):
        reached = int(data["loop/step"])
        if args.total_steps <= reached:
            raise UserError(f"--total-steps {args.total_steps} must exceed the step this run has reached ({reached})")
        saved["total_steps"] = config["args"]["total_steps"] = args.total_steps
        config.setdefault("extended", []).append(reproduce_command(argv))
    return argparse.Namespace(**saved), data, config, lock


def start_run(args, argv):
    """Everything a run needs before its first step, fresh or resumed from RUN_DIR's checkpoint."""
    data = None
    if args.resume:                                      # the run's own configuration, not today's flags
        args, data, config, lock = resumed_args(args, argv)
    check_args(args)
    env, _ = make_env(args.env)
    eval_env, _ = make_env(args.env)
    n_obs, n_act = env.observation_space.shape[0], env.action_space.shape[0]
    act_lo, act_hi = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    capacity = min(args.buffer_size, args.total_steps)
    check_memory(buffer_bytes(capacity, n_obs, n_act), capacity)
    hp = hyperparameters(args)
    rng = np.random.default_rng(args.seed)               # the only source of randomness; passed explicitly
    try:
        agent = build_agent(n_obs, n_act, act_lo, act_hi, hp, rng)
    except ValueError as err:
        raise UserError(f"{err}; ask for a lower --sparsity") from None
    buf = buffer_init(capacity, n_obs, n_act)
    obs, _ = env.reset(seed=args.seed)                   # seed once; later resets continue the env's own stream
    loop = {"step": 0, "last_eval": float("nan"), "obs": obs,    # the loop's state, saved with checkpoints
            "flops": 0.0, "flops_dense": 0.0}                     # training FLOPs so far, and dense TD3's
    run = describe_run(agent, hp, args, argv, n_obs, n_act, act_lo, act_hi)
    if data is None:
        new_run_dir(run, args)
        run["checkpoint"] = os.path.join(run["dir"], CHECKPOINT)
    else:
        run.update({"dir": args.resume, "config": config, "lock": lock,
                    "checkpoint": os.path.join(args.resume, CHECKPOINT)})
        try:
            resume_from(data, agent, buf, rng, env, loop, run)
            write_atomically(os.path.join(run["dir"], "config.json"), lambda f: json.dump(config, f, indent=2))
        except OSError as err:
            raise os_failure(err, "update", run["dir"]) from None
    print_header(run, args, agent, buf)
    warm_up_left = loop["step"] < args.learning_starts
    clock = {"probe": probe_iteration_seconds(n_obs, n_act, act_lo, act_hi, hp) if warm_up_left else 0.0}
    return args, hp, agent, env, eval_env, buf, rng, loop, run, clock


def record_step(info, step, agent, hp, loop, log, run):
    """What Part II does after every step: count FLOPs, keep the losses for the progress line, stop on a NaN
    (before the evaluation: never evaluate a NaN policy), and report a topology update."""
    if "loss_q" in info:
        loop["flops"] += run["flops_iter"]
        loop["flops_dense"] += run["flops_iter_dense"]
    log.update(info)
    check_losses(info, step, run)
    if "topology_actor" in info:
        print_topology(info, step, agent, hp)
        run["flops_iter"] = iteration_flops(agent["actor"], agent["critic"], hp["batch_size"],
                                            hp["policy_delay"])   # fewer after a drop-only update


def run_training(args, argv):
    """Train with Part I's loop and, at each of its yields, log, evaluate to file, checkpoint or stop."""
    args, hp, agent, env, eval_env, buf, rng, loop, run, clock = start_run(args, argv)
    stop, previous_handlers = install_stop_handlers()
    prof, originals = install_profiler(env) if args.profile else ({}, {})
    log, n_iterations = {}, 0
    clock.update(start=time.perf_counter(), start_step=loop["step"], warmup_end=None)
    clock["last_log"] = clock["start"]
    if loop["step"] >= args.learning_starts:
        clock["warmup_end"] = clock["start"]
    try:
        for step, info in train(agent, env, eval_env, buf, hp, rng, loop):
            if "eval_returns" in info:
                record_evaluation(info["eval_returns"], agent, buf, rng, env, loop, run, args)
            else:
                n_iterations += "loss_q" in info
                record_step(info, step, agent, hp, loop, log, run)
                if step == args.learning_starts:
                    clock["warmup_end"] = time.perf_counter()
                if eval_due(step, hp):
                    continue                             # this step's evaluation is the next yield
            if step % args.log_every == 0:
                print_progress(step, args, loop, log, agent, clock)
            if stop["signal"] is not None and step < args.total_steps:
                save_checkpoint(run["checkpoint"], agent, buf, rng, env, loop, run["config"], args.save_buffer)
                print(f"interrupted ({signal.Signals(stop['signal']).name}) after step {step}: "
                      f"checkpoint saved to {run['checkpoint']}", flush=True)
                print(f"resume with: python dst_td3.py --resume {shlex.quote(run['dir'])}", flush=True)
                return 128 + stop["signal"]
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        remove_profiler(originals)
    wall = time.perf_counter() - clock["start"]
    print(f"done steps={args.total_steps} wall={format_duration(wall)} final_eval={loop['last_eval']:.1f} "
          f"run_dir={run['dir']}", flush=True)
    print(f"reproduce: {run['config']['command']}", flush=True)
    for command in run["config"].get("extended", []):
        print(f"extended by: {command}", flush=True)
    if args.profile:
        print_profile(prof, wall, n_iterations)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    try:
        if args.report:
            return report(args.report, args.figure)
        if args.eval_only or args.load:
            return eval_only(args, argv)
        # overflow turns into inf/NaN, which the loop itself detects and reports in one line (TrainingStopped)
        with np.errstate(over="ignore", invalid="ignore"):
            return run_training(args, argv)
    except UserError as err:
        print(f"dst_td3.py: error: {err}", file=sys.stderr, flush=True)
        return 2
    except TrainingStopped as err:
        print(f"dst_td3.py: training stopped: {err}", file=sys.stderr, flush=True)
        return 1
    except SystemFailure as err:
        print(f"dst_td3.py: error: {err}", file=sys.stderr, flush=True)
        return 1
    except MemoryError:                                  # where check_memory cannot look (not Linux)
        print("dst_td3.py: error: out of memory: pass a smaller --buffer-size", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
