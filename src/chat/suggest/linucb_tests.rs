//! Unit tests of the LinUCB math (packed f64 triangle, f32 scoring copy).

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
fn direct(xs: &[Vec<f64>], rs: &[f64], d: usize, lambda: f64, gamma: f64) -> (Vec<f64>, Vec<f64>) {
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
        close(&arm.a_inv_full(), &a_inv, 1e-9),
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
    assert!(close(&arm.a_inv_full(), &a_inv, 1e-8));
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
    let c = Ctx::new(&x);
    for round in 1..=20 {
        arm.update(&x, 1.0, &p);
        arm.touch(round);
    }
    let (_, m0, w0) = arm.score_at(&c, 20, &p);
    let (_, m1, w1) = arm.score_at(&c, 120, &p);
    assert_eq!(m0, m1, "ageing leaves the mean alone");
    assert!(w1 > w0 * 1.5, "{w0} → {w1}");
    let fresh = Arm::new(d, p.lambda).score(&c, p.alpha).2;
    let (_, _, w2) = arm.score_at(&c, 100_000, &p);
    assert!(
        (w2 - fresh).abs() < 1e-12,
        "capped at a fresh arm's width: {w2} vs {fresh}"
    );
}

/// `xᵀA⁻¹x` straight from the f64 matrix.
fn direct_variance(arm: &Arm, x: &[f64]) -> f64 {
    let d = arm.d;
    let m = arm.a_inv_full();
    (0..d).map(|i| x[i] * dot(&m[i * d..(i + 1) * d], x)).sum()
}

#[test]
fn the_f32_sparse_and_dense_variances_match_the_f64_matrix() {
    let d = 64;
    let mut arm = Arm::new(d, 1.0);
    let mut seed = 3;
    let p = Params::default();
    for n in 0..600 {
        // Mostly sparse contexts like the product's, some dense.
        let x: Vec<f64> = (0..d)
            .map(|i| {
                let v = lcg(&mut seed);
                if n % 5 == 0 || i == 0 || v.abs() < 0.2 {
                    v
                } else {
                    0.0
                }
            })
            .collect();
        arm.update(&x, 0.5, &p);
    }
    let mut sparse = vec![0.0; d];
    for (i, v) in [
        (0, 1.0),
        (3, 1.0),
        (13, 1.0),
        (17, 1.0),
        (40, 0.6),
        (51, 0.8),
    ] {
        sparse[i] = v;
    }
    let dense: Vec<f64> = (0..d).map(|_| lcg(&mut seed) / 8.0).collect();
    for x in [sparse, dense] {
        let c = Ctx::new(&x);
        let (got, want) = (arm.variance(&c), direct_variance(&arm, &x));
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1e-3),
            "sparse {}: {got} vs {want}",
            c.sparse()
        );
    }
}

#[test]
fn the_packed_triangle_round_trips_and_indexes_in_order() {
    let d = 7;
    let mut seed = 5;
    let mut full = vec![0.0; d * d];
    for i in 0..d {
        for j in i..d {
            let v = lcg(&mut seed);
            full[i * d + j] = v;
            full[j * d + i] = v;
        }
    }
    let p = pack(&full, d);
    assert_eq!(p.len(), packed_len(d));
    for i in 0..d {
        for j in i..d {
            assert_eq!(p[packed_index(d, i, j)], full[i * d + j]);
        }
    }
    assert_eq!(unpack(&p, d), full);
}

/// Arms stored before the packed form (full row-major `A⁻¹`) load as the same model.
#[test]
fn an_arm_stored_as_a_full_matrix_loads_as_the_same_model() {
    let d = 10;
    let p = Params::default();
    let mut arm = Arm::new(d, 1.0);
    let mut seed = 9;
    for _ in 0..50 {
        let x: Vec<f64> = (0..d).map(|_| lcg(&mut seed)).collect();
        arm.update(&x, 1.0, &p);
    }
    let old = Wire {
        d,
        a_inv: arm.a_inv_full(),
        b: arm.b.clone(),
        theta: arm.theta.clone(),
        updates: arm.updates,
        since_refresh: arm.since_refresh,
        last_round: 7,
    };
    let bytes = postcard::to_allocvec(&old).unwrap();
    let loaded: Arm = postcard::from_bytes(&bytes).unwrap();
    let mut want = arm.clone();
    want.last_round = 7;
    assert_eq!(loaded, want);
    // And the packed form round-trips.
    let again: Arm = postcard::from_bytes(&postcard::to_allocvec(&want).unwrap()).unwrap();
    assert_eq!(again, want);
    assert_eq!(
        postcard::to_allocvec(&want).unwrap().len(),
        // d, the packed triangle, b, θ (1-byte lengths), counters as varints.
        1 + (1 + packed_len(d) * 8) + 2 * (1 + d * 8) + 1 + 1 + 1
    );
    // A wrong shape is refused, not misread.
    let bad = Wire {
        a_inv: vec![0.0; 3],
        ..old
    };
    assert!(postcard::from_bytes::<Arm>(&postcard::to_allocvec(&bad).unwrap()).is_err());
}

#[test]
fn top_k_is_the_head_of_the_full_order() {
    let mut seed = 21;
    let s: Vec<f64> = (0..200).map(|_| (lcg(&mut seed) * 10.0).round()).collect();
    let mut all: Vec<usize> = (0..s.len()).collect();
    all.sort_by(|a, b| s[*b].total_cmp(&s[*a]).then(a.cmp(b)));
    let top = top_k(&s, 5);
    assert_eq!(top, all[..5]);
    assert_eq!(top_k(&s[..2], 3).len(), 2);
}
