"""Vowpal Wabbit cross-check of the reply-suggestion learner (issue 19, goal G-B5; not CI).

    cargo bench --bench bandit -- --dump /tmp/bandit-streams --seeds 20
    python3 benches/bandit_vw.py /tmp/bandit-streams 20     # pip install vowpalwabbit numpy

Runs VW `--cb_explore_adf --epsilon 0.05 -q sa` (shared features: intent and the 8 noise
features; action features: the reply id) on exactly the conversations and outcome draws the
Rust bench wrote, and prints VW's cumulative reward per seed and the mean, to compare with
LinUCB's line from the bench.
"""
import sys

import numpy as np
import vowpalwabbit


def reward_of(p, u, c, z):
    if u >= p:
        return 0.0
    if c < 0.3:
        rating = min(5.0, max(1.0, float(np.round(4.2 + 0.8 * z))))
        return 1.0 + 0.25 * (rating - 3.0) / 2.0
    return 1.0


def run(d, seed):
    world = [[float(v) for v in line.split(",")] for line in open(f"{d}/world-{seed}.csv")]
    k = len(world[0])
    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --epsilon 0.05 -q sa --quiet --random_seed {seed}")
    rng = np.random.default_rng(seed)
    total = 0.0
    for line in open(f"{d}/stream-{seed}.csv"):
        f = line.strip().split(",")
        intent = int(f[0])
        noise = [float(v) for v in f[1:9]]
        u, c, z = float(f[9]), float(f[10]), float(f[11])
        shared = "shared |s i%d:1 %s" % (intent, " ".join(f"n{j}:{v}" for j, v in enumerate(noise)))
        actions = [f"|a r{a}:1" for a in range(k)]
        pmf = vw.predict([shared] + actions)
        pmf = np.asarray(pmf, dtype=float)
        a = int(rng.choice(k, p=pmf / pmf.sum()))
        r = reward_of(world[intent][a], u, c, z)
        total += r
        labelled = list(actions)
        labelled[a] = f"0:{-r}:{pmf[a]} " + actions[a]
        vw.learn([shared] + labelled)
    vw.finish()
    return total


if __name__ == "__main__":
    d, seeds = sys.argv[1], int(sys.argv[2])
    totals = []
    for s in range(1, seeds + 1):
        t = run(d, s)
        totals.append(t)
        print(f"seed {s}: VW cumulative reward {t:.2f}", flush=True)
    print(f"VW mean cumulative reward over {seeds} seeds: {np.mean(totals):.2f}")
