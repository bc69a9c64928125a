#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
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
Intervals too: Cohen's Wald intervals against statsmodels' (unbounded, as it
prints them), Gwet's t intervals from Gwet's published formulas (Handbook of
Inter-Rater Reliability, 4th ed., 2014, ch. 5; bounded as irrCAC bounds them:
the upper end at 1 only), the ICC bounds against psych's; and on every run,
every metric's value must lie inside its own interval. Designs include raters
who oppose each other, where AC2 falls below -1 and a kappa bound above 1.
Debian packages: python3-numpy python3-sklearn python3-statsmodels
r-cran-psych (for the ICC part). Run with /usr/bin/python3: a pyenv python
does not see Debian's modules.

usage: tests/irr/crosscheck.py [path/to/accord]   (default build/accord)
Prints `irrcheck: N passed, N failed`; exits 1 on any failure.
"""
import json
import os
import re
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
    res = json.loads(out.stdout)
    check_inside(path, res)
    return res


def val(res, name):
    return res["metrics"][name]["value"]


def check_inside(case, res):
    """Every defined metric with an interval lies inside it."""
    for name, m in res["metrics"].items():
        ci = m.get("ci")
        if m["value"] is None or not ci:
            continue
        check("%s %s inside its interval" % (case, name),
              1.0 if ci[0] <= m["value"] <= ci[1] else 0.0, 1.0)


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


def t_quantile(p, df):
    """Student's t quantile by bisection on the regularised incomplete beta
    (continued fraction, Numerical Recipes 6.4), independent of the C code's
    log-scale bisection on F."""
    from math import lgamma, log, exp

    def betacf(a, b, x):
        qab, qap, qam = a + b, a + 1, a - 1
        c, d = 1.0, 1 - qab * x / qap
        d = 1 / d
        h = d
        for m in range(1, 10000):
            m2 = 2 * m
            aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 / (1 + aa * d)
            c = 1 + aa / c
            h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 / (1 + aa * d)
            c = 1 + aa / c
            h *= d * c
            if abs(d * c - 1) < 1e-16:
                break
        return h

    def ibeta(a, b, x):
        if x <= 0:
            return 0.0
        if x >= 1:
            return 1.0
        bt = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x))
        if x < (a + 1) / (a + b + 2):
            return bt * betacf(a, b, x) / a
        return 1 - bt * betacf(b, a, 1 - x) / b

    def cdf(t):
        tail = 0.5 * ibeta(df / 2, 0.5, df / (df + t * t))
        return 1 - tail if t > 0 else tail

    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def gwet_ci(coef, se, n, conf=0.95):
    """Gwet 2014: coefficient -/+ t(1 - (1-conf)/2, n-1) * SE; irrCAC clips
    the upper bound at 1 and leaves the lower bound as it is."""
    t = t_quantile(1 - (1 - conf) / 2, n - 1)
    return coef - t * se, min(1.0, coef + t * se)


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
        if i >= 10:
            # Opposed raters: kappas near or below 0, bounds past -1 and 1.
            m[:, 1] = q + 1 - m[:, 1]
        if i >= 13:
            m = m[: int(rng.integers(4, 9))]  # few units: wide intervals, past 1
        check_cohen_ci("ci%d" % i, tmp, m, q)
    # The issue's example: statsmodels 0.13.5 prints [0.104377, 1.228956].
    check_cohen_ci("issue8-2", tmp, np.array([[1, 1], [1, 1], [1, 1], [2, 2], [2, 2], [2, 1]],
                                              dtype=float), 2)
    for i in range(18):
        q = int(rng.integers(2, 8))
        m = random_panel(rng, int(rng.integers(4, 80)), int(rng.integers(2, 7)), q, 0.2)
        if i >= 12:
            # Raters at opposite ends of the scale: AC2 below -1.
            m = np.where(np.arange(m.shape[1])[None, :] % 2 == 1, q + 1 - m, m)
            m = m[: int(rng.integers(4, 12))]
        check_gwet_ci("gw%d" % i, tmp, m, q)
    # The issue's example: irrCAC gives AC2 (quadratic) -1.37885, [-2.36957, -0.38814].
    issue = np.array([[1, 7], [7, 2], [3, 5], [6, 1]], dtype=float)
    res = check_gwet_ci("issue8-1", tmp, issue, 7)
    g = res["metrics"]["gwet_ac2_quadratic"]
    check("issue8-1 ac2 (irrCAC)", g["value"], -1.37885, 1e-5)
    check("issue8-1 ac2 lower (irrCAC)", g["ci"][0], -2.36957, 1e-5)
    check("issue8-1 ac2 upper (irrCAC)", g["ci"][1], -0.38814, 1e-5)


def check_cohen_ci(case, tmp, m, q):
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
        if not np.isfinite(ref.kappa) or not np.isfinite(ref.std_kappa):
            continue
        check("%s %s" % (case, name), got["value"], ref.kappa)
        check("%s %s se (statsmodels)" % (case, name), got["se"], ref.std_kappa)
        ci = got.get("ci") or [None, None]
        check("%s %s lower (statsmodels)" % (case, name), ci[0], ref.kappa_low)
        check("%s %s upper (statsmodels)" % (case, name), ci[1], ref.kappa_upp)


def check_gwet_ci(case, tmp, m, q):
    levels = list(np.arange(1, q + 1, dtype=float))
    res = run_accord(m, levels, tmp, ["--ci", "--bootstrap", "200"])
    n = sum(1 for row in m if (~np.isnan(row)).any())
    for kind, name in (("ac1", "gwet_ac1"), ("linear", "gwet_ac2_linear"),
                       ("quadratic", "gwet_ac2_quadratic"), ("bp", "brennan_prediger")):
        coef, se = gwet(m, levels, kind)
        got = res["metrics"][name]
        if coef is None:
            check("%s %s" % (case, name), got["value"], None)
            continue
        check("%s %s se (Gwet 2014 formula)" % (case, name), got.get("se"), se)
        lo, hi = gwet_ci(coef, se, n)
        ci = got.get("ci") or [None, None]
        check("%s %s lower (Gwet 2014, irrCAC bounds)" % (case, name), ci[0], lo)
        check("%s %s upper (Gwet 2014, irrCAC bounds)" % (case, name), ci[1], hi)
    return res


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
        ci_res = run_accord(matrix, None, tmp, ["--ci", "--bootstrap", "200"])
        for j, name in enumerate(names):
            m = ci_res["metrics"][name]
            if m["value"] is None:
                check("%s %s (psych)" % (case, name), None, v[j] if np.isfinite(v[j]) else None)
                continue
            check("%s %s (psych)" % (case, name), m["value"], v[j])
            lo, hi = v[6 + j], v[12 + j]
            if lo > hi:
                # psych prints the step-up across its pole reversed: no interval.
                check("%s %s no interval (psych reversed)" % (case, name), m.get("ci"), None)
                continue
            ci = m.get("ci") or [None, None]
            check("%s %s lower (psych)" % (case, name), ci[0], lo, 1e-7)
            check("%s %s upper (psych)" % (case, name), ci[1], hi, 1e-7)


def run_cli(tmp, text, args):
    path = os.path.join(tmp, "cli.csv")
    with open(path, "w") as f:
        f.write(text)
    out = subprocess.run([ACCORD, "irr"] + args + [path], capture_output=True, text=True,
                         timeout=300)
    return out.returncode, out.stdout, out.stderr


def check_cli(tmp):
    """The command's contract on hostile input (issue 8, items 4 and 6)."""
    rows = "unit,rater,score\nu1,a,1e200\nu1,b,1\nu2,a,2\nu2,b,3\nu3,a,3\nu3,b,-1e200\n"
    rc, out, err = run_cli(tmp, rows, ["--ci", "--by-rater"])
    check("cli 1e200 exit", rc, 0)
    check("cli 1e200 no NaN or Infinity", float(bool(re.search(r"\bNaN\b|Infinity", out))), 0.0)
    if rc == 0:
        res = json.loads(out)
        check_inside("cli 1e200", res)
        for name, m in res["metrics"].items():
            ok = (m["value"] is not None) or bool(m.get("reason"))
            check("cli 1e200 %s defined or explained" % name, float(ok), 1.0)
    rc, _, err = run_cli(tmp, "unit,rater,score\nu1,a,1\nu1,b,1e400\n", [])
    check("cli 1e400 exit 2", rc, 2)
    check("cli 1e400 names line 3", float(":3: " in err), 1.0)
    long_number = "1." + "0" * 80
    rc, out, err = run_cli(tmp, "unit,rater,score\nu1,a,%s\nu1,b,2\n" % long_number, [])
    check("cli long number accepted", rc, 0)
    plain = "unit,rater,score\nu1,a,1\nu1,b,2\nu2,a,2\nu2,b,2\n"
    for args, words in ((["--ci=1"], "--ci takes no value"),
                        (["--levels"], "--levels needs a value"),
                        (["--bootstrap", "199", "--ci"], "from 200 to 1000000"),
                        (["--threads", "0"], "--threads wants")):
        path_last = args[0] == "--levels"
        cmd = [ACCORD, "irr"] + ([os.path.join(tmp, "cli.csv")] + args if path_last
                                 else args + [os.path.join(tmp, "cli.csv")])
        out = subprocess.run(cmd, capture_output=True, text=True)
        check("cli %s exit 2" % args[0], out.returncode, 2)
        first = out.stderr.split("\n")[0]
        check("cli %s says %r (got %r)" % (args[0], words, first), float(words in first), 1.0)
        check("cli %s names no short option" % args[0], float("option -" in out.stderr), 0.0)
    # Bootstrap work over the limit is refused before it starts: 25,000 units
    # whose ratings all differ (no shared patterns) x 10^6 replicates.
    many = "unit,rater,score\n" + "".join("u%d,a,%d\nu%d,b,%d.5\n" % (i, i, i, i)
                                          for i in range(25000))
    rc, _, err = run_cli(tmp, many, ["--ci", "--bootstrap", "1000000"])
    check("cli huge bootstrap refused", rc, 2)
    check("cli huge bootstrap says why", float("fewer replicates" in err), 1.0)
    # Same seed, same intervals, whatever the thread count.
    rng = np.random.default_rng(7)
    m = random_panel(rng, 300, 5, 4, 0.2)
    outs = [run_accord(m, None, tmp, ["--ci", "--seed", "5", "--threads", str(n)])
            for n in (1, 2, 3)]
    for n, res in zip((2, 3), outs[1:]):
        check("cli --threads %d same as 1" % n, float(res == outs[0]), 1.0)


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
        check_cli(tmp)
        # Zero residual variance (issue 8): psych gives the limiting intervals.
        zero = np.arange(1.0, 6.0)[:, None]
        jobs.append(("agree", np.hstack([zero, zero, zero]), None))
        jobs.append(("plus-one", np.hstack([zero, zero + 1, zero + 2]), None))
        jobs.append(("plus-one-2", np.hstack([zero, zero + 1]), None))
        check_psych(tmp, jobs)
    print("irrcheck: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
