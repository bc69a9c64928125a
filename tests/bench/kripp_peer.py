#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""kripp_peer.py - the python peer of `accord irr` in `make bench` (issue 8).

    kripp_peer.py FILE.csv     prints ordinal Krippendorff's alpha

What a Python user runs on the same long CSV (unit,rater,score): pandas reads
it, pivots it to the raters x units reliability matrix, and alpha is computed
the way the `krippendorff` package computes it, in pure numpy (value counts by
comparing the matrix with the value domain, the coincidence matrix as a sum of
per-unit outer products, the ordinal distances over the domain, the random
coincidences from the marginals). Debian packages no such module, so this is
written here from Krippendorff (2011), "Computing Krippendorff's
Alpha-Reliability". One alpha, no interval.
"""
import sys

import numpy as np


def alpha(reliability_data, level="ordinal"):
    """raters x units matrix, NaN = missing."""
    data = np.asarray(reliability_data, dtype=float)
    domain = np.unique(data[~np.isnan(data)])
    counts = (data.T[..., np.newaxis] == domain[np.newaxis, np.newaxis, :]).sum(axis=1)
    counts = counts[counts.sum(axis=1) > 1]
    v = len(domain)
    pairable = counts.sum(axis=1)
    diagonals = counts[:, np.newaxis, :] * np.eye(v)[np.newaxis, ...]
    per_unit = counts[..., np.newaxis] * counts[:, np.newaxis, :] - diagonals
    o = np.divide(per_unit, (pairable - 1).reshape((-1, 1, 1))).sum(axis=0)
    n_v = o.sum(axis=0)
    idx = np.arange(v)
    i1 = np.minimum(idx[:, None], idx[None, :])
    i2 = np.maximum(idx[:, None], idx[None, :])
    if level == "ordinal":
        cum = np.concatenate(([0.0], np.cumsum(n_v)))
        d = (cum[i2 + 1] - cum[i1] - (n_v[i1] + n_v[i2]) / 2) ** 2
    elif level == "interval":
        d = (domain[:, None] - domain[None, :]) ** 2
    else:
        d = (domain[:, None] != domain[None, :]).astype(float)
    e = (np.outer(n_v, n_v) - np.diagflat(n_v)) / (n_v.sum() - 1)
    return 1 - (o * d).sum() / (e * d).sum()


def main():
    import pandas as pd

    df = pd.read_csv(sys.argv[1])
    wide = df.pivot(index="rater", columns="unit", values="score")
    print("%.15g" % alpha(wide.to_numpy(dtype=float)))


if __name__ == "__main__":
    main()
