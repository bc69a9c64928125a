#!/usr/bin/python3
"""crosscheck.py - `accord irr` against independent implementations.

On many random data sets (two raters, complete panels, panels with missing
ratings, decimal scores) the command's numbers are compared with:
  scikit-learn   cohen_kappa_score (unweighted, linear, quadratic)
  statsmodels    cohens_kappa (kappa and its Fleiss-Cohen-Everitt SE), fleiss_kappa
  R psych        ICC (the six Shrout-Fleiss forms and their F-based bounds)
  numpy, here    Krippendorff's alpha through the full coincidence matrix
                 (Krippendorff 2011, the q x q way, unlike the C code), Gwet's
                 AC1/AC2/Brennan-Prediger and their variances transcribed from
                 the formulas of Gwet's irrCAC package, and raw agreement.
Debian packages: python3-numpy python3-sklearn python3-statsmodels
r-cran-psych (for the ICC part). Run with /usr/bin/python3: a pyenv python
does not see Debian's modules.

usage: tests/irr/crosscheck.py [path/to/accord]   (default build/accord)
Prints `irrcheck: N passed, N failed`; exits 1 on any failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa
except ImportError as e:
    print("irrcheck: skipped: %s; install the Debian packages python3-numpy "
          "python3-sklearn python3-statsmodels and run with /usr/bin/python3" % e)
    sys.exit(0)

ACCORD = sys.argv[1] if len(sys.argv) > 1 else "build/accord"
TOL = 1e-9
passed = failed = 0


def check(what, got, want, tol=TOL):
    global passed, failed
    ok = (got is None and want is None) or (
        got is not None and want is not None and abs(got - want) <= tol * max(1.0, abs(want)))
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL %s: accord %r, reference %r" % (what, got, want))


def run_accord(matrix, levels, tmp, extra=()):
    """matrix: units x raters, NaN = missing. Returns the parsed JSON."""
    path = os.path.join(tmp, "data.csv")
    with open(path, "w") as f:
        f.write("unit,rater,score\n")
        for u, row in enumerate(matrix):
            for r, x in enumerate(row):
                if not np.isnan(x):
                    f.write('"u %d",r%d,%s\n' % (u, r, repr(float(x))))
    args = [ACCORD, "irr"]
    if levels is not None:
        args += ["--levels", ",".join(repr(float(v)) for v in levels)]
    out = subprocess.run(args + list(extra) + [path], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("accord irr failed: %s" % out.stderr)
    return json.loads(out.stdout)


def val(res, name):
    return res["metrics"][name]["value"]


# ---- independent references -------------------------------------------------

def alpha_coincidence(matrix, levels, metric):
    """Krippendorff 2011, section A: coincidence matrix, then D_o and D_e."""
    q = len(levels)
    idx = {v: i for i, v in enumerate(levels)}
    o = np.zeros((q, q))
    for row in matrix:
        vals = [idx[x] for x in row if not np.isnan(x)]
        m = len(vals)
        if m < 2:
            continue
        for i in range(m):
            for j in range(m):
                if i != j:
                    o[vals[i], vals[j]] += 1.0 / (m - 1)
    nc = o.sum(axis=1)
    n = nc.sum()
    if n == 0:
        return None
    delta = np.zeros((q, q))
    for c in range(q):
        for k in range(q):
            if metric == "nominal":
                delta[c, k] = c != k
            elif metric == "interval":
                delta[c, k] = (levels[c] - levels[k]) ** 2
            else:
                lo, hi = min(c, k), max(c, k)
                delta[c, k] = (nc[lo:hi + 1].sum() - (nc[c] + nc[k]) / 2.0) ** 2
    d_o = (o * delta).sum()
    d_e = (np.outer(nc, nc) * delta).sum() / (n - 1)
    if d_e <= 1e-12 * n:
        return None
    return 1.0 - d_o / d_e


def gwet(matrix, levels, kind):
    """Gwet's AC1/AC2/BP/Fleiss-general and SE, as irrCAC computes them."""
    q = len(levels)
    idx = {v: i for i, v in enumerate(levels)}
    units = [[idx[x] for x in row if not np.isnan(x)] for row in matrix]
    units = [u for u in units if u]
    n = len(units)
    agree = np.zeros((n, q))
    for i, u in enumerate(units):
        for c in u:
            agree[i, c] += 1
    k = np.arange(q)
    if kind == "linear":
        w = 1 - np.abs(k[:, None] - k[None, :]) / (q - 1)
    elif kind == "quadratic":
        w = 1 - (k[:, None] - k[None, :]) ** 2 / (q - 1) ** 2
    else:
        w = np.eye(q)
    ri = agree.sum(axis=1)
    agree_w = agree @ w.T
    sum_q = (agree * (agree_w - 1)).sum(axis=1)
    n2 = (ri >= 2).sum()
    if n2 == 0:
        return None, None
    pa = (sum_q[ri >= 2] / (ri * (ri - 1))[ri >= 2]).sum() / n2
    pi = (agree / ri[:, None]).mean(axis=0)
    if kind == "bp":
        pe = 1.0 / q
    elif kind == "fleiss":
        pe = (w * np.outer(pi, pi)).sum()
    else:
        pe = w.sum() * (pi * (1 - pi)).sum() / (q * (q - 1))
    coef = (pa - pe) / (1 - pe)
    den = ri * (ri - 1)
    den = den - (den == 0)
    pa_i = sum_q / den
    ki = (n / n2) * (pa_i - pe * (ri >= 2)) / (1 - pe)
    if kind == "bp":
        pe_i = np.full(n, pe)
    elif kind == "fleiss":
        pe_i = (agree @ ((w @ pi + w.T @ pi) / 2)) / ri
    else:
        pe_i = (w.sum() / (q * (q - 1))) * (agree @ (1 - pi)) / ri
    ki_x = ki - 2 * (1 - coef) * (pe_i - pe) / (1 - pe)
    var = ((ki_x - coef) ** 2).sum() / (n * (n - 1))
    return coef, np.sqrt(var)


def percent(matrix, levels):
    idx = {v: i for i, v in enumerate(levels)}
    ex, adj, una = [], [], []
    for row in matrix:
        v = [idx[x] for x in row if not np.isnan(x)]
        m = len(v)
        if m < 2:
            continue
        pairs = [(a, b) for i, a in enumerate(v) for j, b in enumerate(v) if i != j]
        ex.append(sum(a == b for a, b in pairs) / len(pairs))
        adj.append(sum(abs(a - b) <= 1 for a, b in pairs) / len(pairs))
        una.append(float(len(set(v)) == 1))
    if not ex:
        return None, None, None
    return np.mean(ex), np.mean(adj), np.mean(una)


# ---- the data sets ----------------------------------------------------------

def random_panel(rng, n_units, n_raters, q, missing, decimal=False):
    """Correlated ratings: a unit's true level plus rater noise and bias."""
    truth = rng.integers(0, q, n_units)
    bias = rng.integers(-1, 2, n_raters)
    noise = rng.integers(-1, 2, (n_units, n_raters)) * (rng.random((n_units, n_raters)) < 0.4)
    m = np.clip(truth[:, None] + bias[None, :] * (rng.random(n_raters) < 0.3) + noise, 0, q - 1)
    m = m.astype(float) + 1
    if decimal:
        m = m * 0.5 + 0.25
    m[rng.random(m.shape) < missing] = np.nan
    return m


def check_all(tmp, rng, case, matrix, levels_decl, psych_jobs):
    res = run_accord(matrix, levels_decl, tmp)
    levels = res["levels"]
    n_units, n_raters = matrix.shape
    complete = not np.isnan(matrix).any()

    for metric in ("nominal", "ordinal", "interval"):
        check("%s alpha %s" % (case, metric), val(res, "krippendorff_alpha_" + metric),
              alpha_coincidence(matrix, levels, metric))
    for kind, name in (("ac1", "gwet_ac1"), ("linear", "gwet_ac2_linear"),
                       ("quadratic", "gwet_ac2_quadratic"), ("bp", "brennan_prediger")):
        coef, _ = gwet(matrix, levels, kind)
        check("%s %s" % (case, name), val(res, name), coef)
    for name, ref in zip(("percent_exact", "percent_adjacent", "percent_unanimous"),
                         percent(matrix, levels)):
        check("%s %s" % (case, name), val(res, name), ref)

    counts = (~np.isnan(matrix)).sum(axis=1)
    if complete or (counts == counts[0]).all():
        idx = {v: i for i, v in enumerate(levels)}
        table = np.zeros((n_units, len(levels)))
        for u, row in enumerate(matrix):
            for x in row:
                if not np.isnan(x):
                    table[u, idx[x]] += 1
        if counts[0] >= 2 and len(levels) > 1:
            check("%s fleiss_kappa (statsmodels)" % case, val(res, "fleiss_kappa"),
                  fleiss_kappa(table, method="fleiss"))

    if n_raters == 2 and complete:
        a, b = matrix[:, 0], matrix[:, 1]
        labels = [float(v) for v in levels]
        for weights, name in ((None, "cohen_kappa"), ("linear", "cohen_kappa_linear"),
                              ("quadratic", "cohen_kappa_quadratic")):
            check("%s %s (sklearn)" % (case, name), val(res, name),
                  cohen_kappa_score(a, b, labels=labels, weights=weights))

    if complete and n_units >= 2 and n_raters >= 2:
        psych_jobs.append((case, matrix, res))


def check_ci(tmp, rng):
    """SEs: Cohen's (statsmodels, FCE 1969) and Gwet's (irrCAC formulas)."""
    for i in range(15):
        q = int(rng.integers(3, 6))
        m = random_panel(rng, int(rng.integers(20, 120)), 2, q, 0.0)
        levels = list(np.arange(1, q + 1, dtype=float))
        res = run_accord(m, levels, tmp, ["--ci"])
        table = np.zeros((q, q))
        for a, b in m:
            table[int(a) - 1, int(b) - 1] += 1
        for wt, name in ((None, "cohen_kappa"), ("linear", "cohen_kappa_linear"),
                         ("quadratic", "cohen_kappa_quadratic")):
            kw = {} if wt is None else {"wt": wt}
            ref = cohens_kappa(table, **kw)
            got = res["metrics"][name]
            check("ci%d %s" % (i, name), got["value"], ref.kappa)
            check("ci%d %s se (statsmodels)" % (i, name), got["se"], ref.std_kappa)
    for i in range(15):
        q = int(rng.integers(2, 6))
        m = random_panel(rng, int(rng.integers(10, 80)), int(rng.integers(2, 7)), q, 0.2)
        levels = list(np.arange(1, q + 1, dtype=float))
        res = run_accord(m, levels, tmp, ["--ci", "--bootstrap", "50"])
        for kind, name in (("ac1", "gwet_ac1"), ("linear", "gwet_ac2_linear"),
                           ("quadratic", "gwet_ac2_quadratic"), ("bp", "brennan_prediger")):
            coef, se = gwet(m, levels, kind)
            got = res["metrics"][name]
            if coef is None:
                check("gw%d %s" % (i, name), got["value"], None)
                continue
            check("gw%d %s se (irrCAC formula)" % (i, name), got.get("se"), se)


def check_psych(tmp, jobs):
    if not shutil.which("Rscript"):
        print("irrcheck: note: Rscript not found, ICC not cross-checked "
              "(install r-cran-psych)")
        return
    script = ["suppressMessages(library(psych))", "options(digits=15)", "out <- list()"]
    for i, (_, matrix, _) in enumerate(jobs):
        path = os.path.join(tmp, "icc%d.csv" % i)
        np.savetxt(path, matrix, delimiter=",")
        script.append('x <- as.matrix(read.csv("%s", header=FALSE)); '
                      'r <- ICC(x, lmer=FALSE)$results; '
                      'out[[%d]] <- c(r$ICC, r[["lower bound"]], r[["upper bound"]])'
                      % (path, i + 1))
    script.append('for (v in out) cat(sprintf("%.15g", v), "\\n")')
    rfile = os.path.join(tmp, "icc.R")
    with open(rfile, "w") as f:
        f.write("\n".join(script) + "\n")
    out = subprocess.run(["Rscript", rfile], capture_output=True, text=True)
    if out.returncode != 0:
        if "psych" in out.stderr:
            print("irrcheck: note: R package psych not installed, ICC not cross-checked "
                  "(install r-cran-psych)")
            return
        raise RuntimeError(out.stderr)
    lines = out.stdout.strip().split("\n")
    names = ["icc1_1", "icc2_1", "icc3_1", "icc1_k", "icc2_k", "icc3_k"]
    for (case, matrix, res), line in zip(jobs, lines):
        v = [float(x) for x in line.split()]
        ci_res = run_accord(matrix, None, tmp, ["--ci", "--bootstrap", "2"])
        for j, name in enumerate(names):
            m = ci_res["metrics"][name]
            if m["value"] is None:
                check("%s %s (psych)" % (case, name), None, v[j] if np.isfinite(v[j]) else None)
                continue
            check("%s %s (psych)" % (case, name), m["value"], v[j])
            if m.get("ci"):
                check("%s %s lower (psych)" % (case, name), m["ci"][0], v[6 + j], 1e-7)
                check("%s %s upper (psych)" % (case, name), m["ci"][1], v[12 + j], 1e-7)


def main():
    if not os.access(ACCORD, os.X_OK):
        print("irrcheck: %s is not built (make all)" % ACCORD)
        print("irrcheck: 0 passed, 1 failed")
        return 1
    rng = np.random.default_rng(20240601)
    jobs = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = 0
        for n_raters, missing, decimal in ((2, 0.0, False), (3, 0.0, False), (5, 0.0, False),
                                           (4, 0.25, False), (6, 0.4, False), (3, 0.0, True),
                                           (8, 0.1, True), (2, 0.3, False)):
            for _ in range(6):
                q = int(rng.integers(2, 7))
                m = random_panel(rng, int(rng.integers(3, 150)), n_raters, q, missing, decimal)
                declared = None
                if not decimal and rng.random() < 0.5:
                    declared = list(np.arange(1, q + 2, dtype=float))  # one unused level
                cases += 1
                check_all(tmp, rng, "case%d(r=%d,miss=%.2f)" % (cases, n_raters, missing), m,
                          declared, jobs)
        check_ci(tmp, rng)
        check_psych(tmp, jobs)
    print("irrcheck: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
