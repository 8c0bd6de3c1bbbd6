"""Bradley-Terry ratings of models from pairwise outcomes with ties, with bootstrap intervals.

Model: Davidson (1970), the Bradley-Terry model extended with one tie parameter nu:

    P(i beats j) = pi_i / (pi_i + pi_j + nu sqrt(pi_i pi_j))
    P(tie)       = nu sqrt(pi_i pi_j) / (pi_i + pi_j + nu sqrt(pi_i pi_j))

with pi = exp(theta). Davidson rather than Rao-Kupper because its sufficient statistic for a
model is wins + ties / 2 (a tie counts as half a win, as in the win-rate matrix and in Elo),
it reduces exactly to Bradley-Terry when there are no ties (then nu is fixed at 0), and it
stays concave in (theta, log nu), so Newton's method converges from zero.

The estimate maximizes the log-likelihood minus a ridge (ridge / 2) (|theta|^2 + (log nu)^2):
a Gaussian prior that keeps undefeated models and disconnected comparison graphs finite and,
by symmetry, centres theta at mean 0. Ratings are reported on the natural log scale
(`strength`, mean 0 or anchored at a reference model) and on an Elo-like scale,
1000 + 400 / ln(10) * strength (400 points = 10:1 odds, as in Chatbot Arena).

Intervals: percentile bootstrap with items (clusters of outcomes) resampled, every resample a
weighted refit; all resamples of a batch are fitted together by batched Newton steps. Items
with the same outcomes are drawn together (a multinomial over the distinct kinds of item,
the same distribution as drawing items), so the cost follows the number of distinct kinds,
not of items.

A ranking of m responses gives m(m-1)/2 pairwise outcomes (`ranking_pairs`): each response
beats every response in a lower group, and responses in one group tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

FIRST_WINS = 0
SECOND_WINS = 1
TIE = 2

DEFAULT_RIDGE = 0.01
DEFAULT_RESAMPLES = 1000
ELO_BASE = 1000.0
ELO_SCALE = 400.0 / math.log(10.0)
_MAX_ITERATIONS = 100
_TOLERANCE = 1e-10
_HALVINGS = 30
_CELLS_PER_BATCH = 4_000_000


@dataclass(frozen=True)
class Ratings:
    """Ratings of `n_models` models and what they were computed from.

    `strength` is on the log-odds scale (mean 0, or 0 for the reference model); `low`/`high`
    its percentile bootstrap interval (NaN without resamples). `wins[i, j]` counts outcomes
    where i beat j, `ties[i, j]` (symmetric) the ties between them. `tie_parameter` is
    Davidson's nu (0 when the data hold no ties).
    """

    strength: FloatArray
    low: FloatArray
    high: FloatArray
    tie_parameter: float
    wins: FloatArray
    ties: FloatArray
    items: int
    resamples: int

    @property
    def comparisons(self) -> FloatArray:
        """Per model: outcomes it took part in."""
        counts: FloatArray = (self.wins + self.wins.T + self.ties).sum(axis=1)
        return counts

    @property
    def elo(self) -> FloatArray:
        return to_elo(self.strength)

    @property
    def elo_low(self) -> FloatArray:
        return to_elo(self.low)

    @property
    def elo_high(self) -> FloatArray:
        return to_elo(self.high)


def to_elo(strength: npt.ArrayLike) -> FloatArray:
    """Strengths (natural log scale) on the Elo-like scale: 1000 + 400 / ln(10) * strength."""
    return ELO_BASE + ELO_SCALE * np.asarray(strength, dtype=np.float64)


def ranking_pairs(groups: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """Pairwise outcomes `(a, b, outcome)` of a ranking given best group first (a tie within a group)."""
    pairs: list[tuple[int, int, int]] = []
    for index, group in enumerate(groups):
        for position, first in enumerate(group):
            pairs.extend((first, second, TIE) for second in group[position + 1 :])
            for lower in groups[index + 1 :]:
                pairs.extend((first, second, FIRST_WINS) for second in lower)
    return pairs


def win_rates(wins: npt.ArrayLike, ties: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Share of outcomes row model scored against column model (wins + ties / 2), and the counts (NaN where none)."""
    won = np.asarray(wins, dtype=np.float64)
    tied = np.asarray(ties, dtype=np.float64)
    counts = won + won.T + tied
    shares = np.full(counts.shape, np.nan)
    np.divide(won + tied / 2.0, counts, out=shares, where=counts > 0)
    return shares, counts


def bradley_terry(
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    outcome: npt.ArrayLike,
    *,
    n_models: int,
    items: npt.ArrayLike | None = None,
    ridge: float = DEFAULT_RIDGE,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    reference: int | None = None,
    seed: int = 0,
) -> Ratings:
    """Davidson-Bradley-Terry ratings from outcomes (model codes `first`/`second`, `outcome` 0/1/2 = first/second/tie).

    `items` groups outcomes into the units the bootstrap resamples (one per outcome when None);
    `reference` anchors that model at strength 0 instead of the mean.
    """
    a = np.asarray(first, dtype=np.intp)
    b = np.asarray(second, dtype=np.intp)
    result = np.asarray(outcome, dtype=np.intp)
    if not (a.shape == b.shape == result.shape) or a.ndim != 1:
        raise ValueError("first, second and outcome must be 1-D arrays of the same length")
    if n_models < 1:
        raise ValueError("n_models must be at least 1")
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_models):
        raise ValueError("model codes must be in [0, n_models)")
    if np.any(a == b):
        raise ValueError("a model cannot be compared with itself")
    if result.size and (result.min() < 0 or result.max() > TIE):
        raise ValueError("outcome codes are 0 (first wins), 1 (second wins) or 2 (tie)")
    if ridge <= 0:
        raise ValueError("ridge must be positive")
    if reference is not None and not 0 <= reference < n_models:
        raise ValueError("reference must be a model code")
    unit = np.arange(a.size, dtype=np.intp) if items is None else np.unique(np.asarray(items), return_inverse=True)[1]
    n_units = int(unit.max()) + 1 if unit.size else 0

    # Each outcome as a cell of its unordered pair: (pair, low model won | high model won | tie).
    low, high = np.minimum(a, b), np.maximum(a, b)
    pair_keys, pair = np.unique(low * n_models + high, return_inverse=True)
    low_of, high_of = pair_keys // n_models, pair_keys % n_models
    low_won = np.where(a == low, FIRST_WINS, SECOND_WINS)
    cell = np.where(result == TIE, 2, np.where(result == low_won, 0, 1))
    n_pairs = pair_keys.size
    per_unit = sparse.csr_array((np.ones(a.size), (unit, pair * 3 + cell)), shape=(max(n_units, 1), n_pairs * 3))
    totals: FloatArray = np.asarray(per_unit.sum(axis=0), dtype=np.float64).reshape(1, -1)
    with_ties = bool(totals[0, 2::3].sum() > 0)
    fitter = _Fitter(low_of, high_of, n_models, ridge, with_ties)
    params = fitter.fit(totals)[0]
    strength = params[:n_models]
    nu = math.exp(params[n_models]) if with_ties else 0.0

    lows = np.full(n_models, np.nan)
    highs = np.full(n_models, np.nan)
    if resamples > 0 and n_units > 1:
        rng = np.random.default_rng(seed)
        patterns, shares = _distinct_units(per_unit)
        n_patterns = shares.size
        batch = max(1, min(resamples, _CELLS_PER_BATCH // max(n_patterns, n_pairs * 3, 1)))
        resampled: list[FloatArray] = []
        for start in range(0, resamples, batch):
            size = min(batch, resamples - start)
            # Drawing n_units items with replacement = a multinomial count per distinct kind of item.
            weights = rng.multinomial(n_units, shares, size=size).astype(np.float64)
            counts = np.asarray((patterns.T @ weights.T).T)
            resampled.append(_anchored(fitter.fit(counts)[:, :n_models], reference))
        values = np.concatenate(resampled)
        tail = (1.0 - confidence) / 2.0 * 100.0
        lows, highs = np.percentile(values, [tail, 100.0 - tail], axis=0)
    wins = np.zeros((n_models, n_models))
    ties = np.zeros((n_models, n_models))
    counted = totals[0].reshape(n_pairs, 3)
    np.add.at(wins, (low_of, high_of), counted[:, 0])
    np.add.at(wins, (high_of, low_of), counted[:, 1])
    np.add.at(ties, (low_of, high_of), counted[:, 2])
    ties = ties + ties.T
    return Ratings(
        strength=_anchored(strength[None, :], reference)[0],
        low=np.asarray(lows, dtype=np.float64),
        high=np.asarray(highs, dtype=np.float64),
        tie_parameter=nu,
        wins=wins,
        ties=ties,
        items=n_units,
        resamples=resamples if n_units > 1 else 0,
    )


def _distinct_units(per_unit: sparse.csr_array) -> tuple[sparse.csr_array, FloatArray]:
    """The distinct rows of the units' outcome counts and the share of units having each."""
    # Rows are told apart by two random projections, then checked exactly against their representative.
    projection = np.random.default_rng(0).uniform(1.0, 2.0, size=(per_unit.shape[1], 2))
    signature = np.asarray(per_unit @ projection)
    _, first_row, kind = np.unique(signature, axis=0, return_index=True, return_inverse=True)
    kind = kind.reshape(-1)
    patterns = per_unit[first_row]
    if (per_unit - patterns[kind]).count_nonzero():
        first_row = np.arange(per_unit.shape[0])
        kind = first_row
        patterns = per_unit
    multiplicity = np.bincount(kind, minlength=first_row.size).astype(np.float64)
    return patterns, multiplicity / multiplicity.sum()


def _anchored(strengths: FloatArray, reference: int | None) -> FloatArray:
    anchor = strengths.mean(axis=1) if reference is None else strengths[:, reference]
    return strengths - anchor[:, None]


class _Fitter:
    """Batched Newton on the penalized negative log-likelihood; one row of counts per fit.

    Parameters are theta (one per model) and, with ties, eta = log nu. Per pair the linear
    predictors are s = (theta_low, theta_high, eta + (theta_low + theta_high) / 2), the
    outcome probabilities softmax(s), so each pair adds n * A' (diag(q) - q q') A to the
    Hessian, A the pair's 3 x 3 map from (theta_low, theta_high, eta) to s.
    """

    def __init__(self, low: IntArray, high: IntArray, n_models: int, ridge: float, with_ties: bool) -> None:
        self.n_params = n_models + (1 if with_ties else 0)
        self.ridge = ridge
        self.with_ties = with_ties
        self.cells = 3 if with_ties else 2
        k = self.cells
        self.design = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 1.0]]) if with_ties else np.eye(2)
        self.row_outer = np.einsum("lk,lj->lkj", self.design, self.design).reshape(k, k * k)
        pairs = low.size
        columns = np.column_stack([low, high, np.full(pairs, n_models)])[:, :k]
        self.columns = columns
        rows = np.arange(pairs * k)
        self.gradient_map = sparse.csr_array(
            (np.ones(pairs * k), (rows, columns.ravel())), shape=(pairs * k, self.n_params)
        )
        flat = (columns[:, :, None] * self.n_params + columns[:, None, :]).ravel()
        self.hessian_map = sparse.csr_array(
            (np.ones(pairs * k * k), (np.arange(pairs * k * k), flat)), shape=(pairs * k * k, self.n_params**2)
        )
        self.pairs = pairs

    def _predictors(self, params: FloatArray) -> FloatArray:
        predictors: FloatArray = params[:, self.columns] @ self.design.T  # batch x pairs x k
        return predictors

    def objective(self, params: FloatArray, counts: FloatArray, n: FloatArray) -> FloatArray:
        s = self._predictors(params)
        top = s.max(axis=2, keepdims=True)
        log_norm = (top + np.log(np.exp(s - top).sum(axis=2, keepdims=True)))[:, :, 0]
        log_likelihood = (counts * s).sum(axis=(1, 2)) - (n * log_norm).sum(axis=1)
        value: FloatArray = -log_likelihood + self.ridge / 2.0 * (params**2).sum(axis=1)
        return value

    def fit(self, cell_counts: FloatArray) -> FloatArray:
        """Fitted parameters per row of `cell_counts` (batch x pairs*3: low won, high won, tie)."""
        batch = cell_counts.shape[0]
        counts = cell_counts.reshape(batch, self.pairs, 3)[:, :, : self.cells]
        n = counts.sum(axis=2)
        params = np.zeros((batch, self.n_params))
        value = self.objective(params, counts, n)
        active = np.ones(batch, dtype=bool)
        for _ in range(_MAX_ITERATIONS):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            x, c, m = params[rows], counts[rows], n[rows]
            s = self._predictors(x)
            q = np.exp(s - s.max(axis=2, keepdims=True))
            q /= q.sum(axis=2, keepdims=True)
            residual = (c - m[:, :, None] * q) @ self.design  # batch x pairs x k (per parameter column)
            gradient = -(self.gradient_map.T @ residual.reshape(rows.size, -1).T).T + self.ridge * x
            # D' (diag(q) - q q') D, D the design: sum over cells of q_l d_l d_l', minus (D'q)(D'q)'.
            spread = (q @ self.row_outer).reshape(*q.shape[:2], self.cells, self.cells)
            mean = q @ self.design
            local = m[:, :, None, None] * (spread - mean[:, :, :, None] * mean[:, :, None, :])
            hessian = (self.hessian_map.T @ local.reshape(rows.size, -1).T).T.reshape(
                rows.size, self.n_params, self.n_params
            )
            hessian += self.ridge * np.eye(self.n_params)
            step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
            decrement = (gradient * step).sum(axis=1)
            done = decrement / 2.0 < _TOLERANCE
            scale = np.ones(rows.size)
            old = value[rows]
            trial = x - step
            new = self.objective(trial, c, m)
            for _ in range(_HALVINGS):
                worse = ~(new <= old) & ~done
                if not worse.any():
                    break
                scale[worse] /= 2.0
                trial[worse] = x[worse] - scale[worse, None] * step[worse]
                new[worse] = self.objective(trial[worse], c[worse], m[worse])
            moved = ~done & (new <= old)
            params[rows[moved]] = trial[moved]
            value[rows[moved]] = new[moved]
            active[rows[done | ~moved]] = False
        return params
