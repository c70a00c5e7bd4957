//! Disjoint LinUCB (Li, Chu, Langford, Schapire, WWW 2010) with discounting.
//!
//! Each arm keeps `A⁻¹` and `b` of a ridge regression of reward on context:
//! `A = λI + Σ γ^age x xᵀ`, `b = Σ γ^age r x`, `θ = A⁻¹ b`. A pull is a Sherman–Morrison
//! rank-one update of `A⁻¹` (O(d²)); old evidence is discounted by γ per update of the arm, so
//! a changed world corrects itself. Because pure discounting also shrinks the prior λI, the
//! prior mass is put back every `refresh_every` updates (one exact inversion, amortised).
//!
//! **Representation.** `A⁻¹` is symmetric, so only its upper triangle is kept, packed by rows
//! (`d(d+1)/2` numbers, [`packed_index`]): the update works on it in f64 and can never drift
//! out of symmetry. Scoring reads an f32 copy of the same triangle (rebuilt after each update
//! of the arm, never stored), a quarter of a full f64 matrix: choosing among 200 arms is bound
//! by how much memory it reads. With a sparse context only the rows and columns of the
//! non-zero features are read ([`Ctx`]): `nz(nz+1)/2` numbers per arm instead of `d²`.
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
            time_gamma: 0.998,
        }
    }
}

/// Numbers in the packed upper triangle of a `d × d` matrix.
pub fn packed_len(d: usize) -> usize {
    d * (d + 1) / 2
}

/// Where `(i, j)`, `i ≤ j`, is in the packed upper triangle (rows one after the other, row
/// `i` holding columns `i..d`).
pub fn packed_index(d: usize, i: usize, j: usize) -> usize {
    debug_assert!(i <= j && j < d);
    i * (2 * d - i + 1) / 2 + (j - i)
}

/// The packed upper triangle of a full symmetric matrix (the mean of the two halves).
pub fn pack(full: &[f64], d: usize) -> Vec<f64> {
    let mut p = Vec::with_capacity(packed_len(d));
    for i in 0..d {
        p.push(full[i * d + i]);
        for j in i + 1..d {
            p.push(0.5 * (full[i * d + j] + full[j * d + i]));
        }
    }
    p
}

/// The full row-major matrix of a packed upper triangle.
pub fn unpack(packed: &[f64], d: usize) -> Vec<f64> {
    let mut m = vec![0.0; d * d];
    let mut k = 0;
    for i in 0..d {
        for j in i..d {
            m[i * d + j] = packed[k];
            m[j * d + i] = packed[k];
            k += 1;
        }
    }
    m
}

/// A context, prepared once per decision and scored against every arm.
///
/// `xᵀ A⁻¹ x = Σ_{i≤j} A⁻¹ᵢⱼ · wᵢⱼ` with `wᵢⱼ = xᵢxⱼ` (twice that off the diagonal), so the
/// weights of the packed triangle are computed here once and each arm's variance is one flat
/// dot product with its triangle: over every entry for a dense context, or over the pairs of
/// non-zero features only for a sparse one.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub x: Vec<f64>,
    /// Indices of the non-zero features, ascending.
    nz: Vec<usize>,
    /// `|x|²`
    sq: f64,
    /// Sparse: where the pairs of non-zero features are in the packed triangle.
    idx: Vec<u32>,
    /// The weights: one per pair in `idx` (sparse), or one per packed entry (dense).
    w: Vec<f32>,
}

impl Ctx {
    pub fn new(x: &[f64]) -> Ctx {
        let d = x.len();
        let nz = nonzero(x);
        let pairs = packed_len(nz.len());
        let weight = |i: usize, j: usize| {
            let v = x[i] * x[j];
            (if i == j { v } else { 2.0 * v }) as f32
        };
        let (mut idx, mut w) = (Vec::new(), Vec::new());
        if pairs * 4 < packed_len(d) {
            for (a, &i) in nz.iter().enumerate() {
                for &j in &nz[a..] {
                    idx.push(packed_index(d, i, j) as u32);
                    w.push(weight(i, j));
                }
            }
        } else {
            w.reserve(packed_len(d));
            for i in 0..d {
                for j in i..d {
                    w.push(weight(i, j));
                }
            }
        }
        Ctx {
            x: x.to_vec(),
            sq: nz.iter().map(|i| x[*i] * x[*i]).sum(),
            nz,
            idx,
            w,
        }
    }

    /// Whether the variance reads only the pairs of non-zero features.
    pub fn sparse(&self) -> bool {
        self.w.len() == self.idx.len()
    }
}

/// One arm's ridge statistics. Stored as [`Wire`] (see there for the older full-matrix form).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "Wire", into = "Wire")]
pub struct Arm {
    pub d: usize,
    /// `A⁻¹`, upper triangle packed by rows ([`packed_index`]), f64.
    pub a_inv: Vec<f64>,
    pub b: Vec<f64>,
    /// `A⁻¹ b`, kept current.
    pub theta: Vec<f64>,
    /// Updates (pulls) so far; a pending reward remembers this to find its discount.
    pub updates: u64,
    /// Updates since the prior was last restored.
    pub since_refresh: u32,
    /// The round (conversation count) of the last update.
    pub last_round: u64,
    /// `a_inv` in f32, what scoring reads; derived, not stored.
    fast: Vec<f32>,
}

/// An arm as stored (postcard). Versions before the packed form stored `a_inv` as the full
/// row-major `d × d` matrix in the same place; both still load (told apart by the length).
#[derive(Serialize, Deserialize)]
pub struct Wire {
    pub d: usize,
    pub a_inv: Vec<f64>,
    pub b: Vec<f64>,
    pub theta: Vec<f64>,
    pub updates: u64,
    pub since_refresh: u32,
    pub last_round: u64,
}

impl TryFrom<Wire> for Arm {
    type Error = String;

    fn try_from(w: Wire) -> Result<Arm, String> {
        let d = w.d;
        let a_inv = if w.a_inv.len() == packed_len(d) {
            w.a_inv
        } else if w.a_inv.len() == d * d {
            pack(&w.a_inv, d)
        } else {
            return Err(format!(
                "suggestion arm: A⁻¹ has {} numbers, d = {d}",
                w.a_inv.len()
            ));
        };
        if w.b.len() != d || w.theta.len() != d {
            return Err(format!("suggestion arm: b or θ is not {d} long"));
        }
        let mut arm = Arm {
            d,
            a_inv,
            b: w.b,
            theta: w.theta,
            updates: w.updates,
            since_refresh: w.since_refresh,
            last_round: w.last_round,
            fast: Vec::new(),
        };
        arm.refresh_fast();
        Ok(arm)
    }
}

impl From<Arm> for Wire {
    fn from(a: Arm) -> Wire {
        Wire {
            d: a.d,
            a_inv: a.a_inv,
            b: a.b,
            theta: a.theta,
            updates: a.updates,
            since_refresh: a.since_refresh,
            last_round: a.last_round,
        }
    }
}

impl Arm {
    pub fn new(d: usize, lambda: f64) -> Arm {
        let mut a_inv = vec![0.0; packed_len(d)];
        for i in 0..d {
            a_inv[packed_index(d, i, i)] = 1.0 / lambda;
        }
        let mut arm = Arm {
            d,
            a_inv,
            b: vec![0.0; d],
            theta: vec![0.0; d],
            updates: 0,
            since_refresh: 0,
            last_round: 0,
            fast: Vec::new(),
        };
        arm.refresh_fast();
        arm
    }

    /// Expected reward `θ·x`.
    pub fn mean(&self, x: &[f64]) -> f64 {
        dot(&self.theta, x)
    }

    fn mean_ctx(&self, c: &Ctx) -> f64 {
        c.nz.iter().map(|i| self.theta[*i] * c.x[*i]).sum()
    }

    /// `xᵀ A⁻¹ x`, from the f32 triangle (see [`Ctx`]).
    pub fn variance(&self, c: &Ctx) -> f64 {
        let s = if c.sparse() {
            gather_dot(&self.fast, &c.idx, &c.w)
        } else {
            wide_dot32(&self.fast, &c.w)
        };
        s.max(0.0)
    }

    /// The UCB score and its parts (mean, width).
    pub fn score(&self, c: &Ctx, alpha: f64) -> (f64, f64, f64) {
        let m = self.mean_ctx(c);
        let w = alpha * self.variance(c).sqrt();
        (m + w, m, w)
    }

    /// [`Arm::score`] at round `round`: the width of an arm idle since `last_round` grows by
    /// `time_gamma^(−idle/2)`, capped at a fresh arm's width (`|x|²/λ`).
    pub fn score_at(&self, c: &Ctx, round: u64, p: &Params) -> (f64, f64, f64) {
        let m = self.mean_ctx(c);
        let mut v = self.variance(c);
        if p.time_gamma < 1.0 && self.updates > 0 {
            let idle = round.saturating_sub(self.last_round).min(i32::MAX as u64) as i32;
            let fresh = c.sq / p.lambda;
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
        symv(&self.a_inv, d, x, &mut u);
        let inv_g = 1.0 / g;
        for ui in u.iter_mut() {
            *ui *= inv_g;
        }
        let den = 1.0 + dot(x, &u);
        let mut off = 0;
        for i in 0..d {
            let ui = u[i] / den;
            let row = &mut self.a_inv[off..off + d - i];
            for (v, uj) in row.iter_mut().zip(&u[i..]) {
                *v = *v * inv_g - ui * uj;
            }
            off += d - i;
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
        self.refresh_fast();
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
        let mut t = std::mem::take(&mut self.theta);
        t.resize(self.d, 0.0);
        symv(&self.a_inv, self.d, &self.b, &mut t);
        self.theta = t;
    }

    fn refresh_fast(&mut self) {
        self.fast.clear();
        self.fast.extend(self.a_inv.iter().map(|v| *v as f32));
    }

    /// Puts back the prior mass discounting took since the last restoration:
    /// `A ← A + λ(1 − γ^k) I`, with `A⁻¹` recomputed exactly.
    fn restore_prior(&mut self, p: &Params) {
        let d = self.d;
        let add = p.lambda * (1.0 - p.gamma.powi(self.since_refresh as i32));
        self.since_refresh = 0;
        let mut a = unpack(&self.a_inv, d);
        if !invert_spd(&mut a, d) {
            return;
        }
        for i in 0..d {
            a[i * d + i] += add;
        }
        if invert_spd(&mut a, d) {
            self.a_inv = pack(&a, d);
        }
    }

    /// `A⁻¹` as a full row-major matrix (for tests and diagnostics).
    pub fn a_inv_full(&self) -> Vec<f64> {
        unpack(&self.a_inv, self.d)
    }

    /// `A` itself (for tests and diagnostics).
    pub fn a(&self) -> Option<Vec<f64>> {
        let mut a = self.a_inv_full();
        invert_spd(&mut a, self.d).then_some(a)
    }
}

/// `out = M x` for a symmetric `M` given as its packed upper triangle.
fn symv(m: &[f64], d: usize, x: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    let mut off = 0;
    for i in 0..d {
        let row = &m[off..off + d - i];
        let xi = x[i];
        out[i] += row[0] * xi + dot(&row[1..], &x[i + 1..]);
        if xi != 0.0 {
            for (o, mij) in out[i + 1..].iter_mut().zip(&row[1..]) {
                *o += mij * xi;
            }
        }
        off += d - i;
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

/// `a·b` of two f32 slices: eight f32 lanes within blocks of 64, the blocks summed in f64.
fn wide_dot32(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let mut total = 0.0f64;
    for (x, y) in a[..n].chunks(64).zip(b[..n].chunks(64)) {
        let mut s = [0.0f32; 8];
        let mut cx = x.chunks_exact(8);
        let mut cy = y.chunks_exact(8);
        for (x, y) in (&mut cx).zip(&mut cy) {
            let x: &[f32; 8] = x.try_into().expect("8");
            let y: &[f32; 8] = y.try_into().expect("8");
            for k in 0..8 {
                s[k] += x[k] * y[k];
            }
        }
        let mut t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        for (x, y) in cx.remainder().iter().zip(cy.remainder()) {
            t += x * y;
        }
        total += t as f64;
    }
    total
}

/// `Σ m[idx[k]]·w[k]`, in four independent f64 sums (one running sum would wait on each
/// addition).
fn gather_dot(m: &[f32], idx: &[u32], w: &[f32]) -> f64 {
    let mut s = [0.0f64; 4];
    let mut ci = idx.chunks_exact(4);
    let mut cw = w.chunks_exact(4);
    for (i, w) in (&mut ci).zip(&mut cw) {
        for k in 0..4 {
            s[k] += (m[i[k] as usize] * w[k]) as f64;
        }
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for (i, w) in ci.remainder().iter().zip(cw.remainder()) {
        t += (m[*i as usize] * w) as f64;
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
    let order = |a: &usize, b: &usize| {
        scores[*b]
            .partial_cmp(&scores[*a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    };
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    if k < idx.len() && k > 0 {
        idx.select_nth_unstable_by(k - 1, order);
    }
    idx.truncate(k);
    idx.sort_by(order);
    idx
}

#[cfg(test)]
#[path = "linucb_tests.rs"]
mod tests;
