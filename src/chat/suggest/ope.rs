//! Off-policy estimators on logged decisions: inverse propensity scoring (IPS) and its
//! self-normalised form (SNIPS), as defined by the Open Bandit Pipeline (`obp`):
//!
//! - IPS = mean over rounds of `π(a_i | x_i) / p_i · r_i`
//! - SNIPS = `Σ w_i r_i / Σ w_i` with `w_i = π(a_i | x_i) / p_i`
//!
//! where `a_i` is the logged action, `p_i` its logged propensity and `π` the evaluated policy.
//! Intervals are normal approximations (1.96 standard errors).

use serde::Serialize;

/// One logged round: the evaluated policy's probability of the logged action, the logged
/// propensity, the reward.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub target: f64,
    pub pscore: f64,
    pub reward: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

/// Summed in the order given (obp sums numpy arrays; the conformance test compares to 1e-9).
pub fn ips(rounds: &[Round]) -> Option<Estimate> {
    if rounds.is_empty() {
        return None;
    }
    let v: Vec<f64> = rounds
        .iter()
        .map(|r| r.target / r.pscore * r.reward)
        .collect();
    let (mean, se) = mean_se(&v);
    Some(Estimate {
        value: mean,
        low: mean - 1.96 * se,
        high: mean + 1.96 * se,
        n: rounds.len(),
    })
}

pub fn snips(rounds: &[Round]) -> Option<Estimate> {
    if rounds.is_empty() {
        return None;
    }
    let n = rounds.len() as f64;
    let w: Vec<f64> = rounds.iter().map(|r| r.target / r.pscore).collect();
    let sw: f64 = w.iter().sum();
    if sw <= 0.0 {
        return Some(Estimate {
            value: 0.0,
            low: 0.0,
            high: 0.0,
            n: rounds.len(),
        });
    }
    let swr: f64 = w.iter().zip(rounds).map(|(w, r)| w * r.reward).sum();
    let value = swr / sw;
    // Delta method: Var ≈ Σ w²(r − v)² / (Σ w)².
    let var: f64 = w
        .iter()
        .zip(rounds)
        .map(|(w, r)| (w * (r.reward - value)).powi(2))
        .sum::<f64>()
        / (sw * sw);
    let se = var.sqrt();
    let _ = n;
    Some(Estimate {
        value,
        low: value - 1.96 * se,
        high: value + 1.96 * se,
        n: rounds.len(),
    })
}

/// The mean reward with a 95% interval.
pub fn mean(values: &[f64]) -> Option<Estimate> {
    if values.is_empty() {
        return None;
    }
    let (m, se) = mean_se(values);
    Some(Estimate {
        value: m,
        low: m - 1.96 * se,
        high: m + 1.96 * se,
        n: values.len(),
    })
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logging_of_the_logging_policy_is_the_plain_mean() {
        // Evaluating the uniform policy on uniform logs: weights are 1.
        let rounds: Vec<Round> = (0..10)
            .map(|i| Round {
                target: 0.25,
                pscore: 0.25,
                reward: (i % 2) as f64,
            })
            .collect();
        assert!((ips(&rounds).unwrap().value - 0.5).abs() < 1e-15);
        assert!((snips(&rounds).unwrap().value - 0.5).abs() < 1e-15);
    }

    #[test]
    fn a_deterministic_policy_counts_only_matching_rounds() {
        let r = |target: f64, reward: f64| Round {
            target,
            pscore: 0.5,
            reward,
        };
        let rounds = [r(1.0, 1.0), r(0.0, 1.0), r(1.0, 0.0), r(0.0, 0.0)];
        assert!((ips(&rounds).unwrap().value - 0.5).abs() < 1e-15);
        assert!((snips(&rounds).unwrap().value - 0.5).abs() < 1e-15);
        let e = ips(&rounds).unwrap();
        assert!(e.low < e.value && e.value < e.high);
    }
}

/// Conformance with the Open Bandit Pipeline on real logged data (goal G-B4).
#[cfg(test)]
mod obd {
    use super::*;

    /// obp 0.4.1 `InverseProbabilityWeighting` / `SelfNormalizedInverseProbabilityWeighting`
    /// `.estimate_policy_value(...)` of the lookup policy below on OBD random/all, computed
    /// once by `tests/fixtures/obd/obp_reference.py` (command and versions in the README there).
    /// (printed `%.17g` as 0.071999999999999995 and 0.070866141732283477; the same doubles)
    const OBP_IPW: f64 = 0.072;
    const OBP_SNIPW: f64 = 0.07086614173228348;

    /// The fixed policy: a slate of 3 items by user_feature_0; other users get item
    /// (first 8 hex digits of user_feature_0 + 7 · position) mod 80.
    fn policy(user: &str, k: usize) -> u64 {
        match user {
            "81ce123cbb5bd8ce818f60fb3586bba5" => [49, 58, 18][k],
            "cef3390ed299c09874189c387777674a" => [50, 25, 69][k],
            u => (u64::from_str_radix(&u[..8], 16).unwrap() + 7 * k as u64) % 80,
        }
    }

    #[test]
    fn obd_conformance_with_obp() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/obd/random_all.csv"
        );
        let text = std::fs::read_to_string(path).expect("the OBD fixture");
        let mut rounds = Vec::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let item: u64 = f[0].parse().unwrap();
            let position: usize = f[1].parse::<usize>().unwrap() - 1;
            rounds.push(Round {
                target: if policy(f[4], position) == item {
                    1.0
                } else {
                    0.0
                },
                pscore: f[3].parse().unwrap(),
                reward: f[2].parse().unwrap(),
            });
        }
        assert_eq!(rounds.len(), 10_000);
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        let ips = ips(&rounds).unwrap().value;
        let snips = snips(&rounds).unwrap().value;
        assert!(rel(ips, OBP_IPW) < 1e-9, "IPS {ips} vs obp {OBP_IPW}");
        assert!(
            rel(snips, OBP_SNIPW) < 1e-9,
            "SNIPS {snips} vs obp {OBP_SNIPW}"
        );
    }
}
