#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# irr.sh - reliability statistics benchmark: accord's C library against
# independent implementations from Debian on the same data, with ratios.
#
# Run from the repository root after `make all build/bench/irr_bench`
# (BUILD=... to use another build directory). The references need
# python3-numpy, python3-pandas, python3-statsmodels, python3-sklearn and
# r-cran-psych; a missing one is reported and its rows are left out.
set -eu

BUILD=${BUILD:-build}
BENCH="$BUILD/bench/irr_bench"
if [ ! -x "$BENCH" ]; then
    echo "irr.sh: $BENCH is not built (make all $BENCH)" >&2
    exit 1
fi
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

echo "== accord (C, rubric/irr) =="
"$BENCH" "$DIR"
echo

# Debian's python3 sees the apt-installed modules; a pyenv python3 does not.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
ACCORD="$BUILD/accord" PY="$PY" BENCH_DIR="$(dirname "$0")" "$PY" - "$DIR" <<'EOF'
"""The same computations by independent implementations, timed."""
import os
import subprocess
import sys
import time

DIR = sys.argv[1]
PY = os.environ.get("PY", sys.executable)
c = dict(line.split() for line in open(os.path.join(DIR, "c_times.txt")))
c = {k: float(v) for k, v in c.items()}
rows = []


def best(fn, runs=3):
    t = 1e300
    out = None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, (time.perf_counter() - t0) * 1e3)
    return t, out


def row(what, c_key, ref_name, ref_ms):
    rows.append((what, c[c_key], ref_name, ref_ms))


try:
    import numpy as np
    import pandas as pd
except ImportError as e:
    print("irr.sh: references skipped (%s): install python3-numpy python3-pandas" % e)
    sys.exit(0)

full_csv = os.path.join(DIR, "full.csv")
ms, df = best(lambda: pd.read_csv(full_csv), 2)
row("parse 1M ratings", "parse", "pandas.read_csv", ms)


def long_to_codes(df):
    u = pd.factorize(df["unit"])[0]
    r = pd.factorize(df["rater"])[0]
    s = df["score"].to_numpy(dtype=float)
    return u, r, s


u, r, s = long_to_codes(df)


def alpha_numpy(u, s, ordinal=True):
    """Krippendorff's alpha, vectorised numpy: per-unit level counts, the
    coincidence matrix by a sparse product, ordinal deltas from marginals."""
    levels, lv = np.unique(s, return_inverse=True)
    q = len(levels)
    n_units = u.max() + 1
    counts = np.zeros((n_units, q))
    np.add.at(counts, (u, lv), 1)
    m = counts.sum(1)
    keep = m >= 2
    counts, m = counts[keep], m[keep]
    o = (counts / (m - 1)[:, None]).T @ counts
    o[np.diag_indices(q)] -= (counts / (m - 1)[:, None]).sum(0)
    nc = o.sum(1)
    n = nc.sum()
    cum = np.cumsum(nc)
    if ordinal:
        k = np.arange(q)
        lo, hi = np.minimum.outer(k, k), np.maximum.outer(k, k)
        sums = cum[hi] - cum[lo] + nc[lo]
        delta = (sums - (nc[:, None] + nc[None, :]) / 2) ** 2
    else:
        delta = (levels[:, None] - levels[None, :]) ** 2
    return 1 - (n - 1) * (o * delta).sum() / (np.outer(nc, nc) * delta).sum()


ms, a = best(lambda: alpha_numpy(u, s))
row("ordinal alpha (from memory)", "alpha_ordinal_mem", "numpy coincidence matrix", ms)

boot = pd.read_csv(os.path.join(DIR, "boot.csv"))
bu, br, bs = long_to_codes(boot)


def boot_numpy(u, s, reps=1000, seed=1):
    """Unit bootstrap of alpha with the metric fixed, vectorised per replicate."""
    levels, lv = np.unique(s, return_inverse=True)
    q = len(levels)
    n_units = u.max() + 1
    counts = np.zeros((n_units, q))
    np.add.at(counts, (u, lv), 1)
    m = counts.sum(1)
    counts, m = counts[m >= 2], m[m >= 2]
    nc = counts.sum(0)
    v = np.cumsum(nc) - nc / 2  # ordinal mid-ranks
    s1 = counts @ v
    s2 = counts @ (v * v)
    d_o = 2 * (m * s2 - s1 * s1) / (m - 1)
    rng = np.random.default_rng(seed)
    out = np.empty(reps)
    for b in range(reps):
        i = rng.integers(0, len(m), len(m))
        n, S1, S2 = m[i].sum(), s1[i].sum(), s2[i].sum()
        out[b] = 1 - (n - 1) * d_o[i].sum() / (2 * (n * S2 - S1 * S1))
    return np.percentile(out, [2.5, 97.5])


ms, _ = best(lambda: (alpha_numpy(bu, bs), boot_numpy(bu, bs)), 1)
row("alpha + 1000-replicate bootstrap, 10k units", "boot_alpha", "numpy", ms)

complete = pd.read_csv(os.path.join(DIR, "complete.csv"))
cu, cr, cs = long_to_codes(complete)
wide = np.full((cu.max() + 1, cr.max() + 1), np.nan)
wide[cu, cr] = cs
try:
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    table, _ = aggregate_raters(wide.astype(int))
    ms, _ = best(lambda: fleiss_kappa(table))
    # aggregate_raters is part of the work the C side does from the long table.
    ms2, _ = best(lambda: fleiss_kappa(aggregate_raters(wide.astype(int))[0]))
    row("fleiss_kappa, 1M complete", "fleiss_complete", "statsmodels (+aggregate)", ms2)
except ImportError:
    print("irr.sh: statsmodels missing (python3-statsmodels): fleiss row left out")
try:
    from sklearn.metrics import cohen_kappa_score

    ms, _ = best(lambda: cohen_kappa_score(wide[:, 0], wide[:, 1], weights="quadratic"))
    row("quadratic kappa, 100k pairs", "cohen_pair", "sklearn", ms)
except ImportError:
    print("irr.sh: sklearn missing (python3-sklearn): cohen row left out")

# R psych::ICC on 500 units: its aov model matrix grows as units squared
# (5,000 units took minutes).
small = os.path.join(DIR, "icc_small.csv")
np.savetxt(small, wide[:500], delimiter=",")
script = ('suppressMessages(library(psych)); x <- as.matrix(read.csv("%s", header=FALSE)); '
          'best <- Inf; for (i in 1:3) { t0 <- proc.time()[["elapsed"]]; '
          'r <- ICC(x, lmer=FALSE); best <- min(best, proc.time()[["elapsed"]] - t0) }; '
          'cat(best * 1000)' % small)
try:
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if out.returncode == 0:
        row("six ICCs, 500 x 10", "icc_500", "R psych::ICC", float(out.stdout))
    else:
        print("irr.sh: R psych not available (r-cran-psych): ICC row left out")
except FileNotFoundError:
    print("irr.sh: Rscript not found (r-cran-psych): ICC row left out")

# ---- issue 8: `accord irr --ci` on 10^6 ratings against the python peer's
# single ordinal alpha (tests/bench/kripp_peer.py: pandas reads the CSV and
# pivots it, alpha the way the `krippendorff` package computes it, in numpy).
# Both are timed the same way, as a person runs them: one process from the
# CSV file to the printed answer, best of 3. accord computes every metric
# and every interval (1,000 bootstrap replicates); the peer one alpha.
import json  # noqa: E402

accord = os.environ.get("ACCORD", "build/accord")
here = os.environ.get("BENCH_DIR", "tests/bench")
complete_csv = os.path.join(DIR, "complete.csv")  # 100,000 units x 10 raters = 10^6 ratings


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), out.stderr))
    return out.stdout


peer_ms, peer_out = best(lambda: run([PY, os.path.join(here, "kripp_peer.py"), complete_csv]), 3)
plain_ms, _ = best(lambda: run([accord, "irr", complete_csv]), 3)
ci_ms, ci_out = best(lambda: run([accord, "irr", "--ci", complete_csv]), 3)
ci1_ms, ci1_out = best(lambda: run([accord, "irr", "--ci", "--threads", "1", complete_csv]), 3)
got = json.loads(ci_out)["metrics"]["krippendorff_alpha_ordinal"]["value"]
threads = min(os.cpu_count() or 1, 8)
print("== issue 8: --ci on 10^6 ratings (100,000 units x 10 raters), CSV to answer, best of 3 ==")
print("  %-58s %9.1f ms  alpha %s" % ("python peer: one ordinal alpha (kripp_peer.py)", peer_ms,
                                        peer_out.strip()))
print("  %-58s %9.1f ms" % ("accord irr FILE (every metric)", plain_ms))
print("  %-58s %9.1f ms  alpha %.15g" % ("accord irr --ci FILE (every metric and interval, %d threads)"
                                         % threads, ci_ms, got))
print("  %-58s %9.1f ms" % ("accord irr --ci --threads 1 FILE", ci1_ms))
print("  ratio --ci / peer alpha: %.2f (target <= 1); --ci / plain: %.2f; "
      "--threads 1 and %d give the same answer: %s"
      % (ci_ms / peer_ms, ci_ms / plain_ms, threads, "yes" if ci_out == ci1_out else "NO"))
print()

print("== accord vs independent implementations (best of runs, ms) ==")
print("%-44s %10s  %-26s %10s %9s" % ("computation", "accord", "reference", "ref", "ref/C"))
for what, cms, name, rms in rows:
    ratio = rms / cms if cms > 0 else float("inf")
    print("%-44s %10.2f  %-26s %10.2f %8.0fx" % (what, cms, name, rms, ratio))
print("targets: parse + all metrics %.0f ms (< 400), ordinal alpha %.2f ms (< 10)"
      % (c["total"], c["alpha_ordinal_mem"]))
EOF
