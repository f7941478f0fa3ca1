"""Load test of the local model server: N concurrent gRPC clients x M requests each.

  python benchmarks/serving_load.py [--clients=8 --requests=25 --batch=1]
      [--export_base=export/t2i | --model_dir=runs/ssagan] [--size=64 --ngf=32]
  python benchmarks/serving_load.py --requests=250     # the soak: 8 x 250 requests

Serves an export with `tf_t2i.serve` (a subprocess on 127.0.0.1), sends the requests
through the client library (PNG outputs only, as `tf_t2i.client` asks), and prints the
latency percentiles, throughput and errors; then calls the same SavedModel directly,
one request after the other in this process, and prints the ratio of the served
throughput to that. Without --export_base or --model_dir it exports a randomly
initialised generator of the given size (the speed does not depend on the weights).

The server's resident memory is sampled while the clients run: its peak, and its growth
from the first 10% of the requests to the last 10% (a leak per request shows there;
it should be flat).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tf_t2i.serving import client as client_lib
from tf_t2i.serving import export_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

CAPTIONS = ("a large red circle in the center", "a small blue square on the left",
            "a green triangle at the top", "a big yellow star on the right",
            "a purple square at the bottom", "an orange circle and a small blue triangle")


def export_random_model(base: str, size: int, ngf: int) -> str:
    """Exports a randomly initialised SSA-GAN generator + text encoder; returns its base."""
    from tf_t2i import config as config_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
    from tf_t2i.models import factory  # pylint: disable=g-import-not-at-top
    cfg = config_lib.ExperimentConfig().replace(data={"image_size": size},
                                                generator={"ngf": ngf})
    tokenizer = tokenizer_lib.CaptionTokenizer.build(CAPTIONS, cfg.data.max_caption_length)
    text_encoder = factory.build_text_encoder(cfg, tokenizer.vocab_size)
    generator = factory.build_generator(cfg)
    _, sentence = text_encoder(tf.zeros([1, cfg.data.max_caption_length], tf.int32))
    generator(tf.zeros([1, cfg.generator.z_dim]), sentence, training=False)
    module = export_lib.TextToImageExport(generator, text_encoder, tokenizer,
                                          cfg.generator.z_dim, size)
    export_lib.export_modules(module, base, version=1)
    return base


def start_server(model_base: str, max_batch_size: int):
    """tf_t2i.serve on 127.0.0.1 and a free port: (process, port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tf_t2i.serve", f"--model_base={model_base}", "--port=0",
         f"--max_batch_size={max_batch_size}"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            # Keep draining the pipe so the server never blocks on its output.
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(match.group(1))
    raise RuntimeError(f"tf_t2i.serve exited with {proc.wait()} before listening.")


def make_batch(i: int, batch: int):
    captions = [CAPTIONS[(i + k) % len(CAPTIONS)] for k in range(batch)]
    seeds = [i * batch + k for k in range(batch)]
    return captions, seeds


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class MemorySampler:
    """Samples a process's RSS with the number of requests answered so far."""

    def __init__(self, pid: int, answered, interval_s: float = 0.2):
        self.pid, self.answered, self.samples = pid, answered, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s):
        while not self._stop.is_set():
            try:
                self.samples.append((self.answered(), rss_mib(self.pid)))
            except OSError:
                return
            self._stop.wait(interval_s)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self

    def report(self, total: int):
        """(peak MiB, mean MiB over the first 10% of requests, over the last 10%)."""
        rss = np.array([r for _, r in self.samples])
        done = np.array([n for n, _ in self.samples])
        first = rss[done <= 0.1 * total]
        last = rss[done >= 0.9 * total]
        return (float(rss.max()), float(first.mean()) if len(first) else float("nan"),
                float(last.mean()) if len(last) else float("nan"))


def run_clients(address: str, clients: int, requests: int, batch: int, server_pid: int = None):
    """Each client thread (own channel) sends `requests` requests back to back.

    Returns (latencies, errors, seconds, memory) with memory the server's
    MemorySampler.report, or None without server_pid."""
    latencies, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def worker(index):
        with client_lib.GrpcClient(address, "t2i", timeout_s=300) as client:
            client.generate_png(*make_batch(index, batch))  # connect and warm this channel
            barrier.wait()
            for r in range(requests):
                captions, seeds = make_batch(index * requests + r, batch)
                start = time.perf_counter()
                try:
                    client.generate_png(captions, seeds)
                    with lock:
                        latencies.append(time.perf_counter() - start)
                except client_lib.ServingError as e:
                    with lock:
                        errors.append(str(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    sampler = (MemorySampler(server_pid, lambda: len(latencies) + len(errors))
               if server_pid else None)
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    memory = sampler.stop().report(clients * requests) if sampler else None
    return latencies, errors, seconds, memory


def run_direct(version_dir: str, clients: int, requests: int, batch: int):
    """The same requests through the SavedModel's signature in this process.

    Returns:
      {"serial": (latencies, seconds)} one call after the other, and {"threads": ...}
      from `clients` threads at once (what the server does, minus gRPC and protos).
    """
    model = tf.saved_model.load(version_dir)
    fn = model.signatures["serving_default"]

    def call(i):
        captions, seeds = make_batch(i, batch)
        return fn(captions=tf.constant(captions), seeds=tf.constant(seeds, tf.int64))

    def timed(indices, latencies):
        for i in indices:
            t = time.perf_counter()
            call(i)["png_bytes"].numpy()
            latencies.append(time.perf_counter() - t)

    call(0)
    results = {}
    latencies = []
    start = time.perf_counter()
    timed(range(clients * requests), latencies)
    results["serial"] = (latencies, time.perf_counter() - start)
    latencies = []
    threads = [threading.Thread(target=timed,
                                args=(range(c * requests, (c + 1) * requests), latencies))
               for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["threads"] = (latencies, time.perf_counter() - start)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    parser.add_argument("--batch", type=int, default=1, help="captions per request")
    parser.add_argument("--export_base", default=None, help="serve this export base")
    parser.add_argument("--model_dir", default=None, help="export this trained run first")
    parser.add_argument("--size", type=int, default=64, help="random model: image size")
    parser.add_argument("--ngf", type=int, default=32, help="random model: generator width")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = args.export_base
        if base is None:
            base = os.path.join(tmp, "t2i")
            if args.model_dir:
                export_lib.export_run(args.model_dir, base, version=1)
                what = f"the run {args.model_dir}"
            else:
                export_random_model(base, args.size, args.ngf)
                what = f"a random SSA-GAN generator ({args.size} px, ngf={args.ngf})"
        else:
            what = f"the export {base}"
        version_dir = os.path.join(base, str(export_lib.list_versions(base)[-1]))
        total = args.clients * args.requests
        print(f"Serving load: {args.clients} clients x {args.requests} requests of "
              f"{args.batch} caption(s), {what}, {os.cpu_count()} CPUs")

        proc, port = start_server(base, max(64, args.batch))
        try:
            latencies, errors, seconds, memory = run_clients(
                f"127.0.0.1:{port}", args.clients, args.requests, args.batch, proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        ms = np.array(latencies) * 1000.0
        served = len(latencies) / seconds
        if len(ms):
            print(f"  served (gRPC, tf_t2i.serve): p50 {np.percentile(ms, 50):.1f} ms, "
                  f"p99 {np.percentile(ms, 99):.1f} ms, {served:.1f} requests/s "
                  f"({served * args.batch:.1f} images/s), {len(errors)} errors of {total}")
        else:
            print(f"  served: every request failed ({len(errors)} errors)")
        for message in sorted(set(errors))[:3]:
            print(f"    error: {message}")
        peak, first, last = memory
        print(f"  server memory: peak RSS {peak:.0f} MiB; {first:.0f} MiB over the first 10% of "
              f"requests, {last:.0f} MiB over the last 10% (growth {last - first:+.1f} MiB)")

        direct = run_direct(version_dir, args.clients, args.requests, args.batch)
        throughput = {}
        for name, label in (("serial", "one call at a time"),
                            ("threads", f"{args.clients} threads")):
            dms = np.array(direct[name][0]) * 1000.0
            throughput[name] = total / direct[name][1]
            print(f"  direct (SavedModel in this process, {label}): "
                  f"p50 {np.percentile(dms, 50):.1f} ms, p99 {np.percentile(dms, 99):.1f} ms, "
                  f"{throughput[name]:.1f} requests/s")
        print(f"  ratio served / direct throughput: {served / throughput['serial']:.2f} "
              f"(vs one call at a time), {served / throughput['threads']:.2f} "
              f"(vs {args.clients} threads: the cost of gRPC and the server)")


if __name__ == "__main__":
    main()
