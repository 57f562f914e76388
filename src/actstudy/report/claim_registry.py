"""Every claim the report tests, one entry each, and the study note's fourteen statements they test.

An entry says: its key (the parent run's tag is actstudy.claim.<key>), the statement of the note it tests,
which groups of runs it applies to, what it measures, its rule (printed beside the verdict) and the
literature's number. A group is every varying factor but the seed (and tuned keys); its runs are the
seeds. `GROUP_CLAIMS` test one group against a bound, `COMPARISONS` two groups that differ in one factor,
`RUN_CLAIMS` single runs; the step-cost claim reads the report's own micro-benchmark (actstudy.step_cost).
A statement no entry could test in this sweep is listed with what the sweep would need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from actstudy import metric_names as mn
from actstudy import outcomes
from actstudy.report.claim_rules import (  # noqa: I001
    CANNOT_TELL,
    FAILS,
    HOLDS,
    INIT,
    INIT_SCALE,
    LR,
    MODEL,
    MOMENTUM,
    OPTIMIZER,
    WIDTH,
    Measure,
    accuracy_interval,
    accuracy_measure,
    at_least,
    at_most,
    auto_init,
    diverged_text,
    exceeds,
    first_to_last,
    g3,
    gradient_decay,
    layer_mean,
    over_seeds,
    plain,
    relu_family,
    within,
)
from actstudy.report.collect import RunData
from actstudy.report.measures import delta_first_to_last, layer_values
from actstudy.report.stats import END_POINTS, Interval, end_value
from actstudy.report.tables import chance_level, number

DECAY_BOUND = 0.5  # sigmoid: a layer gets at most this fraction of the gradient of the layer above it
SPREAD_BOUND = 10.0  # tanh, ReLU under init=auto: largest / smallest layer gradient within an order
NIELSEN_RANGE = (30.0, 300.0)  # Nielsen's "about 100 times" (0.285 / 0.003 = 95), within a factor ~3
TRAINS_SHARE = 0.5  # a net "trains" when its accuracy is at least half way from chance to perfect
DEEP = 4  # the depth from which a net counts as deep
NEAR_INIT_SHARE = 0.1  # deep sigmoid: the first layer moves at most this fraction as far as the last
COMPARABLE = (0.1, 10.0)  # tanh, ReLU: first / last layer's distance from init within an order
EXPLODING_BOUND = 10.0  # ||delta^1|| / ||delta^L|| at step 0 at least this: the gradient explodes
SIGMOID_SLOPE_MAX = 0.25  # sigmoid'(z) = s (1 - s) <= 1/4
FOLLOWS_RANGE = (0.5, 2.0)  # measured per-layer factor / the mean derivative's, within a factor 2
NEAR_IDENTITY = 0.5  # tanh at init: mean tanh'(z) at least half of y = x's slope
SPARSE_BOUND, DENSE_BOUND = 0.2, 0.01  # fraction of outputs exactly 0: ReLU at least, sigmoid/tanh at most


@dataclass(frozen=True)
class Tested:
    """What a claim measured on a group and its verdict (the rule, when it depends on the runs)."""

    measured: str
    verdict: str
    rule: str | None = None


@dataclass(frozen=True)
class GroupClaim:
    """A claim tested on each group it applies to, against a bound."""

    key: str
    statement: int | None  # the study note's statement (None: beyond the note)
    claim: str
    literature: str
    rule: str
    applies: Callable[[RunData], bool]  # on the group's first run
    test: Callable[[list[RunData]], Tested | None]  # None: the group has nothing to measure


@dataclass(frozen=True)
class Comparison:
    """A claim that one group scores higher than another differing only in `factor`."""

    key: str
    statement: int | None
    claim: str
    literature: str
    factor: str  # the param that differs
    applies: Callable[[RunData], bool]  # which groups are arms
    measure: Callable[[list[RunData]], tuple[Measure, str]]  # one measure for every arm, and its name
    arms: tuple[str, str] | None = None  # (higher, lower) values of `factor`; None: its numeric ends
    larger_is_higher: bool = True  # with numeric ends: whether the larger value scores higher
    accuracy: bool = False  # one seed: an accuracy has its test set's Wilson interval; others cannot rank


def _interval_claim(
    measure: Measure, verdict: Callable[[Interval], str], what: str, log: bool = False, ended: bool = False
) -> Callable[[list[RunData]], Tested | None]:
    """Return a test: `measure` over the group's seeds (`ended`: diverged runs left out), `verdict` on it."""

    def test(members: list[RunData]) -> Tested | None:
        used = [r for r in members if r.plottable] if ended else members
        value = over_seeds(used, measure, log=log)
        if value is None:
            return None
        return Tested(f"{what} {value.text(g3)}{diverged_text(members) if ended else ''}", verdict(value))

    return test


def _spread(run: RunData) -> float | None:
    values = layer_values(run, mn.GRAD_WEIGHT_RMS, at_end=False)
    return max(values) / min(values) if values else None


def _trains(members: list[RunData]) -> Tested | None:
    """A deep net trains: its accuracy half way from chance to perfect."""
    chance = chance_level(members)
    if chance is None:  # runs recorded before the chance level was logged, or none tested
        return None
    bound = chance + TRAINS_SHARE * (1 - chance)
    measure, what = accuracy_measure(members)
    value = accuracy_interval([r for r in members if r.plottable], measure)
    rule = f"holds if the accuracy is >= {bound:.3g}, half way from chance ({chance:.3g}) to 1"
    if value is None:
        return Tested(f"{what}: none{diverged_text(members)}", CANNOT_TELL, rule)
    return Tested(f"{what} {value.text(g3)}{diverged_text(members)}", at_least(value, bound), rule)


def _derivative_bound(members: list[RunData]) -> Tested | None:
    values = [
        v
        for r in members
        for layer in r.layers(mn.ACT_DERIV_MEAN)
        for _, v in r.series(mn.layer_key(mn.ACT_DERIV_MEAN, layer))
    ]
    if not values:
        return None
    largest = max(values)
    verdict = HOLDS if largest <= SIGMOID_SLOPE_MAX + 1e-6 else FAILS
    return Tested(f"largest mean σ'(z) of {len(values)} (layer, step) points: {largest:.4g}", verdict)


def _follows_derivative(run: RunData) -> float | None:
    """Measured per-layer gradient factor / the geometric mean of σ' of the layers the delta passes."""
    factor = gradient_decay(at_end=False)(run)
    slopes = layer_values(run, mn.ACT_DERIV_MEAN, at_end=False)[:-1]  # delta^(l-1) = σ'(z^(l-1)) W^T delta^l
    if factor is None or not slopes:
        return None
    return factor / math.exp(sum(math.log(s) for s in slopes) / len(slopes))


def _both_signs(run: RunData) -> float | None:
    """The smaller of each layer's two tails, min over layers of min(-p02, p98): > 0 when every layer's
    outputs have both signs."""
    low, high = (layer_values(run, f, at_end=True, positive=False) for f in (mn.ACT_P02, mn.ACT_P98))
    return min(min(-a, b) for a, b in zip(low, high, strict=True)) if low and high else None


def _lowest_p02(run: RunData) -> float | None:
    values = layer_values(run, mn.ACT_P02, at_end=True, positive=False)
    return min(values) if values else None


def _nielsen_net(run: RunData) -> bool:
    """The book's net: sigmoid MLP of 4 x 30 units, his init, no batch norm."""
    return (
        run.activation == "sigmoid"
        and run.depth == 4
        and run.value(MODEL) == "mlp"
        and run.value(WIDTH) == 30
        and run.value(INIT) == "nielsen"
        and plain(run)
    )


def _deep_sigmoid(run: RunData) -> bool:
    return run.activation == "sigmoid" and (run.depth or 0) >= 3 and plain(run)


def _is(activation: str, min_depth: int = 1, auto: bool = True) -> Callable[[RunData], bool]:
    return lambda r: (
        r.activation == activation and (r.depth or 0) >= min_depth and plain(r) and (auto_init(r) or not auto)
    )


def _end_mean(key: str) -> Measure:
    return lambda run: end_value(run, key)


def _dead_fraction(runs: list[RunData]) -> tuple[Measure, str]:
    return layer_mean(mn.ACT_DEAD, at_end=True), "dead fraction @end"


def _fixed(measure: Measure, name: str) -> Callable[[list[RunData]], tuple[Measure, str]]:
    return lambda runs: (measure, name)


SEPARATE = "holds if the 95 % intervals separate"
GROUP_CLAIMS: tuple[GroupClaim, ...] = (
    *(
        GroupClaim(
            f"sigmoid_decay_{when}",
            2,
            f"sigmoid gradients shrink layer by layer towards the input ({label})",
            "σ' <= 1/4: a factor of about 1/4 per layer (Nielsen ch. 5)",
            f"holds if the factor is <= {DECAY_BOUND}",
            _deep_sigmoid,
            _interval_claim(
                gradient_decay(at_end),
                lambda v: at_most(v, DECAY_BOUND),
                "factor per layer",
                log=True,
                ended=at_end,
            ),
        )
        for when, label, at_end in (("step0", "step 0", False), ("end", "@end", True))
    ),
    *(
        GroupClaim(
            f"{act}_within_10x",
            number_,
            f"{act} gradients stay within one order of magnitude across layers (step 0)",
            "no shrinking factor per layer with an init fitted to the activation (He 2015)",
            f"holds if the ratio is <= {SPREAD_BOUND:g}",
            _is(act, 2),
            _interval_claim(
                _spread, lambda v: at_most(v, SPREAD_BOUND), "largest / smallest layer", log=True
            ),
        )
        for act, number_ in (("tanh", 7), ("relu", 11))
    ),
    *(
        GroupClaim(
            f"deep_{act}_trains",
            None,
            f"deep {act} nets train (well above chance)",
            "ReLU and tanh nets train at depths where sigmoid nets do not (Glorot & Bengio 2010; "
            "Glorot et al. "
            "2011)",
            "holds if the accuracy is half way from chance to 1",
            _is(act, DEEP),
            _trains,
        )
        for act in ("tanh", "relu")
    ),
    GroupClaim(
        "nielsen_ratio",
        4,
        "the 4th hidden layer learns about 100 times faster than the 1st (step 0)",
        "||δ⁴|| / ||δ¹|| = 0.285 / 0.003 ≈ 95 (Nielsen ch. 5)",
        f"holds if the ratio is within [{NIELSEN_RANGE[0]:g}, {NIELSEN_RANGE[1]:g}]",
        _nielsen_net,
        _interval_claim(
            lambda r: 1 / ratio if (ratio := delta_first_to_last(r)) else None,  # Nielsen's direction
            lambda v: within(v, *NIELSEN_RANGE),
            "||δ⁴|| / ||δ¹||",
            log=True,
        ),
    ),
    GroupClaim(
        "input_layers_stay_near_init",
        3,
        "deep sigmoid nets' first layer stays near its random init: it moves a small fraction as far as "
        "the last",
        "early layers learn slowly and stay almost at their initial state (Nielsen ch. 5)",
        f"holds if first / last layer's ||W - W₀|| / ||W₀|| @end is <= {NEAR_INIT_SHARE:g}",
        lambda r: r.activation == "sigmoid" and (r.depth or 0) >= DEEP and plain(r),
        _interval_claim(
            first_to_last(mn.WEIGHT_DISTANCE, True),
            lambda v: at_most(v, NEAR_INIT_SHARE),
            "first / last layer's distance from init",
            log=True,
            ended=True,
        ),
    ),
    *(
        GroupClaim(
            "input_layers_stay_near_init",
            3,
            f"deep {act} nets' first layer moves comparably far from its init as the last (the control)",
            "no vanishing gradient with an init fitted to the activation (Glorot & Bengio 2010; He 2015)",
            f"holds if first / last layer's distance from init @end is within "
            f"[{COMPARABLE[0]:g}, {COMPARABLE[1]:g}]",
            _is(act, DEEP),
            _interval_claim(
                first_to_last(mn.WEIGHT_DISTANCE, True),
                lambda v: within(v, *COMPARABLE),
                "first / last layer's distance from init",
                log=True,
                ended=True,
            ),
        )
        for act in ("tanh", "relu")
    ),
    GroupClaim(
        "exploding_with_large_gain",
        5,
        "with weights above the signal-preserving scale the gradient explodes towards the input (step 0)",
        "each layer multiplies δ by its weights' gain: δ¹ / δᴸ grows like gain^(L-1) (Nielsen ch. 5)",
        f"holds if ||δ¹|| / ||δᴸ|| (bias gradients) is >= {EXPLODING_BOUND:g}",
        lambda r: r.value(INIT_SCALE, 1.0) > 1 and (r.depth or 0) >= 2 and plain(r),
        _interval_claim(
            delta_first_to_last,
            lambda v: at_least(v, EXPLODING_BOUND),
            "||δ¹|| / ||δᴸ||",
            log=True,
        ),
    ),
    GroupClaim(
        "sigmoid_derivative_bound",
        6,
        "sigmoid's derivative is at most 1/4 at every layer and step",
        "σ'(z) = σ(z)(1 - σ(z)) <= 1/4",
        f"holds if every logged mean σ'(z) is <= {SIGMOID_SLOPE_MAX}",
        lambda r: r.activation == "sigmoid",
        _derivative_bound,
    ),
    GroupClaim(
        "decay_follows_derivative",
        6,
        "sigmoid's per-layer gradient factor is the mean σ' the gradient passes (step 0)",
        "δˡ⁻¹ = σ'(zˡ⁻¹) ⊙ Wˡᵀ δˡ, and Glorot's init gives the weights a gain of about 1",
        f"holds if measured factor / geometric mean of σ' is within "
        f"[{FOLLOWS_RANGE[0]:g}, {FOLLOWS_RANGE[1]:g}] "
        "(the weights' gain taken as 1, which Glorot's init makes it)",
        lambda r: _deep_sigmoid(r) and (auto_init(r) or r.value(INIT) == "xavier"),
        _interval_claim(
            _follows_derivative, lambda v: within(v, *FOLLOWS_RANGE), "factor / mean σ'", log=True
        ),
    ),
    GroupClaim(
        "tanh_near_identity_at_small_activations",
        9,
        "at init tanh units work near the origin, where tanh(z) ≈ z (step 0)",
        "tanh'(0) = 1: small activations pass gradients as y = x does (LeCun et al. 1998)",
        f"holds if the mean tanh'(z) over layers is >= {NEAR_IDENTITY} (half of y = x's slope)",
        _is("tanh"),
        _interval_claim(
            layer_mean(mn.ACT_DERIV_MEAN, False), lambda v: at_least(v, NEAR_IDENTITY), "mean tanh'(z)"
        ),
    ),
    GroupClaim(
        "relu_sparse_sigmoid_tanh_dense",
        10,
        "ReLU outputs are sparse: a good share of them exactly 0 (@end)",
        "ReLU activates only part of its units (Glorot et al. 2011: about half at init)",
        f"holds if the mean fraction of outputs exactly 0 is >= {SPARSE_BOUND}",
        lambda r: relu_family(r) and plain(r),
        _interval_claim(
            layer_mean(mn.ACT_ZERO_FRACTION, True),
            lambda v: at_least(v, SPARSE_BOUND),
            "fraction of outputs = 0",
            ended=True,
        ),
    ),
    GroupClaim(
        "relu_sparse_sigmoid_tanh_dense",
        10,
        "sigmoid and tanh outputs are dense: almost none exactly 0 (@end)",
        "sigmoid and tanh fire every unit",
        f"holds if the mean fraction of outputs exactly 0 is <= {DENSE_BOUND}",
        lambda r: r.activation in ("sigmoid", "tanh") and plain(r),
        _interval_claim(
            layer_mean(mn.ACT_ZERO_FRACTION, True),
            lambda v: at_most(v, DENSE_BOUND),
            "fraction of outputs = 0",
            ended=True,
        ),
    ),
    GroupClaim(
        "tanh_zero_centred_sigmoid_positive",
        14,
        "tanh outputs have both signs in every layer (@end)",
        "tanh is zero-centred (LeCun et al. 1998)",
        "holds if min over layers of min(-p02, p98) is > 0",
        _is("tanh", auto=False),
        _interval_claim(
            _both_signs, lambda v: exceeds(v, 0.0), "min over layers of min(-p02, p98)", ended=True
        ),
    ),
    GroupClaim(
        "tanh_zero_centred_sigmoid_positive",
        14,
        "sigmoid outputs are only positive in every layer (@end)",
        "σ(z) > 0: its outputs are never zero-centred (LeCun et al. 1998)",
        "holds if the lowest p02 is > 0",
        _is("sigmoid", auto=False),
        _interval_claim(_lowest_p02, lambda v: exceeds(v, 0.0), "lowest p02 over layers", ended=True),
    ),
)

COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "sigmoid_train_error_grows_with_depth",
        1,
        "deeper sigmoid nets reach a lower training accuracy",
        "the training error of sigmoid nets rises as hidden layers are added (Nielsen ch. 5)",
        "depth",
        _is("sigmoid", auto=False),
        _fixed(_end_mean(mn.TRAIN_ACC), f"training accuracy @end (last {END_POINTS} logged)"),
        larger_is_higher=False,
    ),
    Comparison(
        "deeper_sigmoid_worse",
        1,
        "deeper sigmoid nets reach a lower test accuracy",
        "deep sigmoid nets train badly (Glorot & Bengio 2010)",
        "depth",
        _is("sigmoid", auto=False),
        accuracy_measure,
        larger_is_higher=False,
        accuracy=True,
    ),
    Comparison(
        "batch_norm_lifts_sigmoid",
        None,
        "batch norm lifts deep sigmoid nets' test accuracy",
        "batch norm rescues deep sigmoid nets (Ioffe & Szegedy 2015)",
        "model.batch_norm",
        lambda r: r.activation == "sigmoid",
        accuracy_measure,
        accuracy=True,
    ),
    Comparison(
        "dead_relu_grows_with_lr",
        12,
        "the dead ReLU fraction grows with the learning rate",
        "ReLU units die under large steps (cs231n; Lu et al. 2019)",
        LR,
        _is("relu", auto=False),
        _dead_fraction,
    ),
    Comparison(
        "tanh_decays_less_than_sigmoid",
        7,
        "tanh gradients shrink less per layer than sigmoid's (step 0)",
        "tanh' <= 1 against σ' <= 1/4 (LeCun et al. 1998)",
        "activation.name",
        lambda r: (r.depth or 0) >= 3 and plain(r) and auto_init(r),
        _fixed(gradient_decay(False), "factor per layer (1: no decay)"),
        arms=("tanh", "sigmoid"),
    ),
    Comparison(
        "sigmoid_saturates_before_tanh",
        8,
        "sigmoid units saturate more than tanh units (@end)",
        "sigmoid saturates outside about [-1, 1]... but Glorot & Bengio (2010) saw tanh layers saturate "
        "one after another: it may not hold",
        "activation.name",
        lambda r: plain(r) and auto_init(r),
        _fixed(layer_mean(mn.ACT_SATURATED, True), "saturated fraction @end, mean over layers"),
        arms=("sigmoid", "tanh"),
    ),
)


def _diverged_above_limit(run: RunData) -> Tested | None:
    """The largest sharpness measured before a plain-SGD run diverged, against 2 / lr."""
    if run.outcome != outcomes.DIVERGED or not _plain_sgd(run):
        return None
    end = number(run.tags.get(outcomes.DIVERGED_STEP, "")) or math.inf
    measured = [(s, v) for s, v in run.series(mn.CURV_SHARPNESS) if s <= end]
    limit = run.last(mn.CURV_TWO_OVER_LR)
    if not measured or limit is None:
        return None
    step, top = max(measured, key=lambda p: p[1])
    where = f"diverged at step {int(end)}" if math.isfinite(end) else "diverged"
    text = f"largest sharpness {g3(top)} (step {step}, {len(measured)} measured), 2/lr {g3(limit)}; {where}"
    return Tested(text, HOLDS if top > limit else FAILS)


def _plain_sgd(run: RunData) -> bool:
    return run.value(OPTIMIZER) == "sgd" and not run.value(MOMENTUM, 0.0)


# Claims tested on each run of its own: (key, statement, claim, literature, rule, test).
RUN_CLAIMS: tuple[tuple[str, int | None, str, str, str, Callable[[RunData], Tested | None]], ...] = (
    (
        "diverged_above_2_over_lr",
        None,
        "a run diverges once its loss's sharpness exceeds 2 / lr",
        "gradient descent is unstable where the Hessian's top eigenvalue exceeds 2 / lr (Cohen et al. "
        "2021, edge of stability)",
        "each diverged plain-SGD run with curv/sharpness measured (monitor.sharpness_every_n_steps): holds "
        "if the largest sharpness measured before the loss became non-finite exceeds 2 / lr, does not hold "
        "if every measurement stayed below it (sparse measurements can miss the last rise)",
        _diverged_above_limit,
    ),
)

STEP_COST = (
    "relu_step_cheaper_than_sigmoid",
    13,
    "a ReLU net's training step is cheaper than a sigmoid net's",
    "ReLU is an if-else, sigmoid an exp and a division",
    "holds if the 95 % interval of the paired sigmoid / relu step-time ratio is above 1",
)


@dataclass(frozen=True)
class Statement:
    """One statement of the study note, the claims that test it, and what a sweep needs to test it."""

    number: int
    text: str
    needs: str


STATEMENTS = (
    Statement(
        1,
        "with sigmoid, the training error rises as hidden layers are added",
        "sigmoid at two depths or more, no batch norm, 2+ seeds (e.g. experiment=vanishing_gradient)",
    ),
    Statement(
        2,
        "layers near the output get large gradients and learn fast",
        "sigmoid at depth 3 or more, no batch norm",
    ),
    Statement(
        3,
        "layers near the input stay almost at their random initial state",
        f"sigmoid (and tanh or ReLU as controls) at depth {DEEP} or more, no batch norm",
    ),
    Statement(
        4,
        "with four hidden layers the first learns about 100 times slower than the fourth",
        "experiment=nielsen",
    ),
    Statement(
        5, "exploding gradients grow the early layers' gradients exponentially", "experiment=exploding"
    ),
    Statement(
        6,
        "sigmoid's derivative is at most 1/4, which is why the gradient shrinks per layer",
        "sigmoid at depth 3 or more, init auto or xavier",
    ),
    Statement(
        7,
        "tanh's derivative lies in (0, 1], which lessens the vanishing gradient",
        "sigmoid and tanh at the same depth of 3 or more, init auto, 2+ seeds",
    ),
    Statement(
        8,
        "sigmoid saturates beyond [-1, 1]; tanh's range is wider and saturates later",
        "sigmoid and tanh at the same setting, init auto, 2+ seeds",
    ),
    Statement(
        9, "tanh is close to y = x near the origin, so small activations train easily", "tanh, init auto"
    ),
    Statement(
        10,
        "sigmoid and tanh fire every unit (dense); ReLU activates only part of them (sparse)",
        "ReLU and sigmoid or tanh runs",
    ),
    Statement(
        11,
        "ReLU's derivative is constant for x > 0, so it does not shrink gradients",
        "ReLU at depth 2 or more, init auto",
    ),
    Statement(
        12,
        "ReLU units in the negative half get no gradient and stop training",
        "ReLU at two learning rates or more (e.g. optimizer.lr=0.01,0.1), 2+ seeds",
    ),
    Statement(13, "ReLU is cheaper to compute than sigmoid", "ReLU and sigmoid runs"),
    Statement(14, "tanh's outputs have both signs, sigmoid's are only positive", "tanh or sigmoid runs"),
)
