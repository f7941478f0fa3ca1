"""Times the Frechet distance of 2048-d statistics: symmetric eigh vs scipy's sqrtm.

  python benchmarks/fid_bench.py [--num=30000 --dim=2048 --repeats=3]
  OPENBLAS_NUM_THREADS=1 python benchmarks/fid_bench.py     # single-threaded LAPACK

Both routes run in the same process on the same statistics (from `--num` seeded
features, Inception-like: non-negative, correlated): `tf_t2i.eval.fid.frechet_distance`
(A = S1^(1/2) by eigh, then eigvalsh(A S2 A)) and the TTUR / pytorch-fid formula
(`scipy.linalg.sqrtm(S1 @ S2)`, real part), interleaved `--repeats` times. Prints the
median wall and CPU time of each, the ratios, and the relative difference of the values.

On a 2-core machine shared with other jobs, OpenBLAS's threaded `eigh` (a tridiagonal
reduction full of thread barriers) swings from 1 to 7 s per 2048-d call when the other
core is busy; with OPENBLAS_NUM_THREADS=1 it is a steady ~1.5 s. Both routes run under
the same setting, so the ratio stays a fair comparison either way.
"""

import argparse
import time

import numpy as np
import scipy
import scipy.linalg

from tf_t2i.eval import fid


def scipy_sqrtm_route(mu1, sigma1, mu2, sigma2):
    """pytorch-fid's calculate_frechet_distance without its retry branch."""
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def inception_like_features(num, dim, seed, shift):
    """ReLU of correlated Gaussians: non-negative, low-rank-ish like pool3 features."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((dim // 4, dim)) / np.sqrt(dim // 4)
    latent = rng.standard_normal((num, dim // 4))
    return np.maximum(latent @ mixing + shift + 0.3 * rng.standard_normal((num, dim)), 0.0)


def timed(fn):
    """(wall seconds, CPU seconds of this process, value)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=30000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    stats = []
    for seed, shift in ((0, 0.0), (1, 0.05)):
        features = inception_like_features(args.num, args.dim, seed, shift).astype(np.float32)
        stats.extend(fid.feature_statistics(features))
    stats_seconds = (time.perf_counter() - start) / 2

    # Warm up LAPACK (first-call library loading would count against whichever runs first).
    small = [np.asarray(x)[:64, :64] if np.ndim(x) == 2 else np.asarray(x)[:64] for x in stats]
    fid.frechet_distance(*small)
    scipy_sqrtm_route(*small)
    # Interleaved, so that load from other processes falls on both routes alike.
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(timed(lambda: fid.frechet_distance(*stats)))
        theirs.append(timed(lambda: scipy_sqrtm_route(*stats)))
    ours_wall, ours_cpu = np.median([t[0] for t in ours]), np.median([t[1] for t in ours])
    scipy_wall, scipy_cpu = np.median([t[0] for t in theirs]), np.median([t[1] for t in theirs])
    ours_value, scipy_value = ours[-1][2], theirs[-1][2]
    print(f"Frechet distance, {args.dim}-d statistics of {args.num} features "
          f"(numpy {np.__version__}, scipy {scipy.__version__}; median of {args.repeats}, "
          "interleaved; wall / CPU seconds):")
    print(f"  statistics (mean + covariance), one set: {stats_seconds:7.2f} s wall")
    print(f"  tf_t2i symmetric eigh:                   {ours_wall:7.2f} / {ours_cpu:6.2f} s"
          f"   FD = {ours_value:.10f}")
    print(f"  scipy sqrtm(S1 @ S2) (pytorch-fid):      {scipy_wall:7.2f} / {scipy_cpu:6.2f} s"
          f"   FD = {scipy_value:.10f}")
    print(f"  ratio scipy / tf_t2i:                    {scipy_wall / ours_wall:7.2f}x wall, "
          f"{scipy_cpu / ours_cpu:.2f}x CPU")
    print(f"  relative difference:                     "
          f"{abs(ours_value - scipy_value) / abs(scipy_value):.2e}")


if __name__ == "__main__":
    main()
