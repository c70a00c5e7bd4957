//! Disjoint LinUCB (Li, Chu, Langford, Schapire, WWW 2010) with discounting.
//!
//! Each arm keeps `A⁻¹` (d × d, row-major) and `b` of a ridge regression of reward on context:
//! `A = λI + Σ γ^age x xᵀ`, `b = Σ γ^age r x`, `θ = A⁻¹ b`. A pull is a Sherman–Morrison
//! rank-one update of `A⁻¹` (O(d²)); old evidence is discounted by γ per update of the arm, so
//! a changed world corrects itself. Because pure discounting also shrinks the prior λI, the
//! prior mass is put back every `refresh_every` updates (one exact inversion, amortised).
//!
//! An arm nobody used for a while also slowly regains uncertainty: its confidence width grows
//! by `time_gamma^(−idle/2)` with the rounds (decisions) since its last update, capped at a
//! fresh arm's, so when the best reply changes, the others get tried again.
//!
//! Rewards may arrive later than the pull (a conversation resolves days after the reply was
//! sent): [`Arm::pull`] adds `x xᵀ` with reward 0, and [`Arm::credit`] adds the reward to `b`
//! later, scaled by the discount the pull has received since. The sum is exactly what one
//! update with the final reward would have produced.

use serde::{Deserialize, Serialize};

/// Tuning of the learner.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Width of the confidence bonus.
    pub alpha: f64,
    /// Ridge prior.
    pub lambda: f64,
    /// Discount per update of an arm (1.0: none).
    pub gamma: f64,
    /// Updates between restorations of the prior.
    pub refresh_every: u32,
    /// Ageing of an idle arm's certainty per round (conversation) since its last update:
    /// the confidence width grows as `γₜ^(−idle/2)`, never past a fresh arm's, so a reply
    /// nobody tried lately is tried again and a changed world is noticed (1.0: off).
    pub time_gamma: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            alpha: 0.5,
            lambda: 1.0,
            gamma: 0.999,
            refresh_every: 256,
            time_gamma: 0.999,
        }
    }
}

/// One arm's ridge statistics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Arm {
    pub d: usize,
    /// `A⁻¹`, row-major.
    pub a_inv: Vec<f64>,
    pub b: Vec<f64>,
    /// `A⁻¹ b`, kept current.
    pub theta: Vec<f64>,
    /// Updates (pulls) so far; a pending reward remembers this to find its discount.
    pub updates: u64,
    /// Updates since the prior was last restored.
    pub since_refresh: u32,
    /// The round (conversation count) of the last update.
    #[serde(default)]
    pub last_round: u64,
}

impl Arm {
    pub fn new(d: usize, lambda: f64) -> Arm {
        let mut a_inv = vec![0.0; d * d];
        for i in 0..d {
            a_inv[i * d + i] = 1.0 / lambda;
        }
        Arm {
            d,
            a_inv,
            b: vec![0.0; d],
            theta: vec![0.0; d],
            updates: 0,
            since_refresh: 0,
            last_round: 0,
        }
    }

    /// Expected reward `θ·x`.
    pub fn mean(&self, x: &[f64]) -> f64 {
        dot(&self.theta, x)
    }

    /// `xᵀ A⁻¹ x`, using only the non-zero entries of `x` (`nz` lists them).
    pub fn variance(&self, x: &[f64], nz: &[usize]) -> f64 {
        let d = self.d;
        let mut s = 0.0;
        if nz.len() * 2 < d {
            for &i in nz {
                let row = &self.a_inv[i * d..(i + 1) * d];
                let mut r = 0.0;
                for &j in nz {
                    r += row[j] * x[j];
                }
                s += x[i] * r;
            }
        } else {
            for (i, xi) in x.iter().enumerate() {
                if *xi != 0.0 {
                    s += xi * dot(&self.a_inv[i * d..(i + 1) * d], x);
                }
            }
        }
        s.max(0.0)
    }

    /// The UCB score and its parts (mean, width).
    pub fn score(&self, x: &[f64], nz: &[usize], alpha: f64) -> (f64, f64, f64) {
        let m = self.mean(x);
        let w = alpha * self.variance(x, nz).sqrt();
        (m + w, m, w)
    }

    /// [`Arm::score`] at round `round`: the width of an arm idle since `last_round` grows by
    /// `time_gamma^(−idle/2)`, capped at a fresh arm's width (`|x|²/λ`).
    pub fn score_at(&self, x: &[f64], nz: &[usize], round: u64, p: &Params) -> (f64, f64, f64) {
        let m = self.mean(x);
        let mut v = self.variance(x, nz);
        if p.time_gamma < 1.0 && self.updates > 0 {
            let idle = round.saturating_sub(self.last_round).min(i32::MAX as u64) as i32;
            let fresh = nz.iter().map(|i| x[*i] * x[*i]).sum::<f64>() / p.lambda;
            v = (v / p.time_gamma.powi(idle)).min(fresh.max(v));
        }
        let w = p.alpha * v.sqrt();
        (m + w, m, w)
    }

    /// Marks the round of an update (see [`Arm::score_at`]).
    pub fn touch(&mut self, round: u64) {
        self.last_round = self.last_round.max(round);
    }

    /// One update with reward `r`: `A ← γA + xxᵀ`, `b ← γb + r x`.
    pub fn update(&mut self, x: &[f64], r: f64, p: &Params) {
        let d = self.d;
        let g = p.gamma;
        // u = (γA)⁻¹ x
        let mut u = vec![0.0; d];
        for (i, ui) in u.iter_mut().enumerate() {
            *ui = dot(&self.a_inv[i * d..(i + 1) * d], x) / g;
        }
        let den = 1.0 + dot(x, &u);
        let inv_g = 1.0 / g;
        for i in 0..d {
            let ui = u[i] / den;
            let row = &mut self.a_inv[i * d..(i + 1) * d];
            for (j, v) in row.iter_mut().enumerate() {
                *v = *v * inv_g - ui * u[j];
            }
        }
        for (bi, xi) in self.b.iter_mut().zip(x) {
            *bi = *bi * g + r * xi;
        }
        self.updates += 1;
        self.since_refresh += 1;
        if p.gamma < 1.0 && self.since_refresh >= p.refresh_every {
            self.restore_prior(p);
        }
        self.refresh_theta();
    }

    /// A pull whose reward is not known yet (it counts as 0 until [`Arm::credit`]).
    pub fn pull(&mut self, x: &[f64], p: &Params) -> u64 {
        self.update(x, 0.0, p);
        self.updates
    }

    /// Adds `delta` to the reward of the pull that returned `at` (discounted as that pull's
    /// evidence has been since).
    pub fn credit(&mut self, x: &[f64], delta: f64, at: u64, p: &Params) {
        if delta == 0.0 {
            return;
        }
        let age = self.updates.saturating_sub(at).min(i32::MAX as u64) as i32;
        let w = delta * p.gamma.powi(age);
        for (bi, xi) in self.b.iter_mut().zip(x) {
            *bi += w * xi;
        }
        self.refresh_theta();
    }

    fn refresh_theta(&mut self) {
        let d = self.d;
        for i in 0..d {
            self.theta[i] = dot(&self.a_inv[i * d..(i + 1) * d], &self.b);
        }
    }

    /// Puts back the prior mass discounting took since the last restoration:
    /// `A ← A + λ(1 − γ^k) I`, with `A⁻¹` recomputed exactly.
    fn restore_prior(&mut self, p: &Params) {
        let d = self.d;
        let add = p.lambda * (1.0 - p.gamma.powi(self.since_refresh as i32));
        self.since_refresh = 0;
        let mut a = self.a_inv.clone();
        if !invert_spd(&mut a, d) {
            return;
        }
        for i in 0..d {
            a[i * d + i] += add;
        }
        if invert_spd(&mut a, d) {
            self.a_inv = a;
        }
    }

    /// `A` itself (for tests and diagnostics).
    pub fn a(&self) -> Option<Vec<f64>> {
        let mut a = self.a_inv.clone();
        invert_spd(&mut a, self.d).then_some(a)
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators so the loop vectorises.
    let mut s = [0.0f64; 4];
    let n = a.len().min(b.len());
    let chunks = n / 4;
    for c in 0..chunks {
        let k = c * 4;
        s[0] += a[k] * b[k];
        s[1] += a[k + 1] * b[k + 1];
        s[2] += a[k + 2] * b[k + 2];
        s[3] += a[k + 3] * b[k + 3];
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for k in chunks * 4..n {
        t += a[k] * b[k];
    }
    t
}

/// Indices of the non-zero entries of `x`.
pub fn nonzero(x: &[f64]) -> Vec<usize> {
    x.iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, _)| i)
        .collect()
}

/// Inverts a symmetric positive definite matrix in place (Cholesky). `false` (and `m`
/// unspecified) when it is not positive definite.
pub fn invert_spd(m: &mut [f64], d: usize) -> bool {
    // L Lᵀ = M, L lower triangular.
    let mut l = vec![0.0; d * d];
    for j in 0..d {
        let mut s = m[j * d + j];
        for k in 0..j {
            s -= l[j * d + k] * l[j * d + k];
        }
        if s <= 0.0 || !s.is_finite() {
            return false;
        }
        let ljj = s.sqrt();
        l[j * d + j] = ljj;
        for i in j + 1..d {
            let mut s = m[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            l[i * d + j] = s / ljj;
        }
    }
    // L⁻¹ (lower triangular).
    let mut li = vec![0.0; d * d];
    for i in 0..d {
        li[i * d + i] = 1.0 / l[i * d + i];
        for j in 0..i {
            let mut s = 0.0;
            for k in j..i {
                s -= l[i * d + k] * li[k * d + j];
            }
            li[i * d + j] = s / l[i * d + i];
        }
    }
    // M⁻¹ = L⁻ᵀ L⁻¹.
    for i in 0..d {
        for j in 0..=i {
            let mut s = 0.0;
            for k in i..d {
                s += li[k * d + i] * li[k * d + j];
            }
            m[i * d + j] = s;
            m[j * d + i] = s;
        }
    }
    true
}

/// Indices of the `k` best scores, best first (ties: the lower index first).
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| {
        scores[*b]
            .partial_cmp(&scores[*a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    });
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
    }

    /// Direct ridge solution: A = γ-weighted sum + λ·(prior weight) I, inverted from scratch.
    fn direct(
        xs: &[Vec<f64>],
        rs: &[f64],
        d: usize,
        lambda: f64,
        gamma: f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let n = xs.len();
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        for i in 0..d {
            a[i * d + i] = lambda * gamma.powi(n as i32);
        }
        for (t, (x, r)) in xs.iter().zip(rs).enumerate() {
            let w = gamma.powi((n - 1 - t) as i32);
            for i in 0..d {
                for j in 0..d {
                    a[i * d + j] += w * x[i] * x[j];
                }
                b[i] += w * r * x[i];
            }
        }
        assert!(invert_spd(&mut a, d));
        let theta = (0..d).map(|i| dot(&a[i * d..(i + 1) * d], &b)).collect();
        (a, theta)
    }

    #[test]
    fn rank_one_updates_equal_the_direct_inverse() {
        let d = 12;
        let mut seed = 7;
        let p = Params {
            alpha: 1.0,
            lambda: 1.0,
            gamma: 1.0,
            refresh_every: u32::MAX,
            time_gamma: 1.0,
        };
        let mut arm = Arm::new(d, 1.0);
        let (mut xs, mut rs) = (Vec::new(), Vec::new());
        for _ in 0..300 {
            let x: Vec<f64> = (0..d).map(|_| lcg(&mut seed)).collect();
            let r = lcg(&mut seed);
            arm.update(&x, r, &p);
            xs.push(x);
            rs.push(r);
        }
        let (a_inv, theta) = direct(&xs, &rs, d, 1.0, 1.0);
        assert!(
            close(&arm.a_inv, &a_inv, 1e-9),
            "A⁻¹ drifted from the direct inverse"
        );
        assert!(close(&arm.theta, &theta, 1e-9), "θ drifted");
    }

    #[test]
    fn discounting_equals_the_weighted_direct_solution() {
        let d = 8;
        let mut seed = 11;
        let p = Params {
            alpha: 1.0,
            lambda: 2.0,
            gamma: 0.98,
            refresh_every: u32::MAX,
            time_gamma: 1.0,
        };
        let mut arm = Arm::new(d, 2.0);
        let (mut xs, mut rs) = (Vec::new(), Vec::new());
        for _ in 0..150 {
            let x: Vec<f64> = (0..d).map(|_| lcg(&mut seed)).collect();
            let r = lcg(&mut seed);
            arm.update(&x, r, &p);
            xs.push(x);
            rs.push(r);
        }
        let (a_inv, theta) = direct(&xs, &rs, d, 2.0, 0.98);
        assert!(close(&arm.a_inv, &a_inv, 1e-8));
        assert!(close(&arm.theta, &theta, 1e-8));
    }

    #[test]
    fn restoring_the_prior_adds_back_what_discounting_took() {
        let d = 6;
        let p = Params {
            alpha: 1.0,
            lambda: 1.0,
            gamma: 0.9,
            refresh_every: 10,
            time_gamma: 1.0,
        };
        let mut arm = Arm::new(d, 1.0);
        let x = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        for _ in 0..10 {
            arm.update(&x, 1.0, &p);
        }
        // Direction 2 was never seen: A[2][2] is exactly the prior again.
        let a = arm.a().unwrap();
        assert!((a[2 * d + 2] - 1.0).abs() < 1e-9, "{}", a[2 * d + 2]);
        // A discounted change corrects: after the reward flips, the mean follows.
        let before = arm.mean(&x);
        for _ in 0..100 {
            arm.update(&x, 0.0, &p);
        }
        assert!(
            before > 0.4 && arm.mean(&x) < 0.05,
            "{before} {}",
            arm.mean(&x)
        );
    }

    #[test]
    fn a_late_credit_equals_the_reward_given_at_once() {
        let d = 5;
        let p = Params {
            gamma: 0.95,
            refresh_every: u32::MAX,
            ..Params::default()
        };
        let xs: Vec<Vec<f64>> = (0..5)
            .map(|i| {
                (0..d)
                    .map(|j| if i == j || j == 0 { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        let mut now = Arm::new(d, 1.0);
        let mut later = Arm::new(d, 1.0);
        let mut pending = Vec::new();
        for (i, x) in xs.iter().enumerate() {
            let r = if i % 2 == 0 { 1.0 } else { 0.0 };
            now.update(x, r, &p);
            pending.push((later.pull(x, &p), r));
        }
        for (x, (at, r)) in xs.iter().zip(pending) {
            later.credit(x, r, at, &p);
        }
        assert!(close(&now.theta, &later.theta, 1e-12));
    }

    #[test]
    fn an_idle_arm_regains_uncertainty_up_to_a_fresh_arms() {
        let d = 4;
        let p = Params {
            time_gamma: 0.99,
            ..Params::default()
        };
        let mut arm = Arm::new(d, p.lambda);
        let x = vec![1.0, 1.0, 0.0, 0.0];
        let nz = nonzero(&x);
        for round in 1..=20 {
            arm.update(&x, 1.0, &p);
            arm.touch(round);
        }
        let (_, m0, w0) = arm.score_at(&x, &nz, 20, &p);
        let (_, m1, w1) = arm.score_at(&x, &nz, 120, &p);
        assert_eq!(m0, m1, "ageing leaves the mean alone");
        assert!(w1 > w0 * 1.5, "{w0} → {w1}");
        let fresh = Arm::new(d, p.lambda).score(&x, &nz, p.alpha).2;
        let (_, _, w2) = arm.score_at(&x, &nz, 100_000, &p);
        assert!(
            (w2 - fresh).abs() < 1e-12,
            "capped at a fresh arm's width: {w2} vs {fresh}"
        );
    }

    #[test]
    fn sparse_and_dense_variance_agree() {
        let d = 16;
        let mut arm = Arm::new(d, 1.0);
        let mut seed = 3;
        let p = Params::default();
        for _ in 0..40 {
            let x: Vec<f64> = (0..d).map(|_| lcg(&mut seed)).collect();
            arm.update(&x, 0.5, &p);
        }
        let mut x = vec![0.0; d];
        x[1] = 1.0;
        x[7] = 0.5;
        let nz = nonzero(&x);
        let all: Vec<usize> = (0..d).collect();
        assert!((arm.variance(&x, &nz) - arm.variance(&x, &all)).abs() < 1e-12);
    }
}
