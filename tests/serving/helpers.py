"""Shared fixtures of the serving tests: one tiny trained run, its export, a server process.

Everything is built once per pytest process and cached: a GAN run of configs/tiny.cfg
trained for its 2 steps on the training tests' tiny DAMSM run (tests/training/helpers),
its export through the `tf_t2i.export` binary, and the in-memory (EMA) model the
exports are compared with. `ServerProcess` runs `tf_t2i.serve` on 127.0.0.1 and a free
port, always stopped at the end.
"""

import atexit
import functools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional

from tests.training import helpers as training_helpers

ROOT = training_helpers.ROOT
MODEL_NAME = "t2i"
CAPTIONS = ("a large red circle in the center", "a small blue square on the left",
            "zebra", "a green star at the top and a purple cross at the bottom")
SEEDS = (0, 1, 2, 12345678901)
_LISTENING_RE = re.compile(r"listening on ([\d.]+):(\d+) \(gRPC\)(?:, REST on [\d.]+:(\d+))?")
_PAGE_RE = re.compile(r"page on (http://[\d.]+:\d+/)")


def subprocess_env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)


def run_binary(module: str, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Runs `python -m <module> args...` from the repository root."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout_s)


@functools.lru_cache(maxsize=None)
def trained_run() -> str:
    """Model dir of the tiny GAN run (2 steps, with an EMA generator)."""
    from tf_t2i.training import train_lib  # pylint: disable=g-import-not-at-top
    model_dir = os.path.join(training_helpers.scratch_dir(), "serving_gan")
    train_lib.run_training(training_helpers.tiny_gan_config(), model_dir, verbose=0)
    return model_dir


@functools.lru_cache(maxsize=None)
def _export_process():
    """Starts the export binary in the background (it overlaps with in-process work)."""
    base = os.path.join(training_helpers.scratch_dir(), "export", MODEL_NAME)
    config = os.path.join(training_helpers.scratch_dir(), "export", "models.config")
    # Output to files, not pipes: nobody reads them until the export is awaited.
    log = os.path.join(training_helpers.scratch_dir(), "export")
    os.makedirs(log, exist_ok=True)
    with open(f"{log}/stdout.txt", "w") as stdout, open(f"{log}/stderr.txt", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tf_t2i.export", f"--model_dir={trained_run()}",
             f"--export_base={base}", f"--write_model_config={config}"],
            cwd=ROOT, env=subprocess_env(), stdout=stdout, stderr=stderr)
    atexit.register(proc.kill)
    return proc, base, config, log


@functools.lru_cache(maxsize=None)
def exported() -> dict:
    """Version 1 of the tiny run, written by the export binary (EMA generator).

    Returns:
      {"base": export base, "version_dir": base/1, "config": the models.config snippet,
       "stdout": what the binary printed}.
    """
    proc, base, config, log = _export_process()
    proc.wait(timeout=600)
    stdout, stderr = (open(f"{log}/{name}.txt").read() for name in ("stdout", "stderr"))
    assert proc.returncode == 0, f"export failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    return {"base": base, "version_dir": os.path.join(base, "1"), "config": config,
            "stdout": stdout}


@functools.lru_cache(maxsize=None)
def _loaded_run():
    from tf_t2i.models import trained_run as trained_run_lib  # pylint: disable=g-import-not-at-top
    run = trained_run_lib.load_run(trained_run())
    _export_process()  # let the export run meanwhile
    return run.cfg, run.tokenizer, run


@functools.lru_cache(maxsize=None)
def in_memory_model(use_ema: bool = True):
    """The run rebuilt in this process: `model(captions, seeds)` as the export computes it."""
    from tf_t2i.serving import export_lib  # pylint: disable=g-import-not-at-top
    return export_lib.module_from_run(*_loaded_run(), use_ema=use_ema)


def reference_images(captions=CAPTIONS, seeds=SEEDS, use_ema: bool = True):
    """uint8 [B, H, W, 3] from the in-memory generator."""
    return in_memory_model(use_ema)(list(captions), list(seeds))["images"].numpy()


class ServerProcess:
    """`python -m tf_t2i.serve` on 127.0.0.1 with free ports, stopped by `stop()` (or at exit).

    Args:
      *args: flags for the server besides --host and --port.
      rest: also serve REST on a free port.
      page: also serve the web page (--ui_port) on a free port (needs rest).
    """

    def __init__(self, *args: str, rest: bool = False, page: bool = False):
        cmd = [sys.executable, "-m", "tf_t2i.serve", "--host=127.0.0.1", "--port=0", *args]
        if rest:
            cmd.append("--rest_port=0")
        if page:
            cmd.append("--ui_port=0")
        self.lines: List[str] = []
        self.port: Optional[int] = None
        self.rest_port: Optional[int] = None
        self.page_url: Optional[str] = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        atexit.register(self.stop)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        # Drains the pipe for the whole life of the process, so it never blocks on output.
        for line in self.proc.stdout:
            self.lines.append(line)
            match = _LISTENING_RE.search(line)
            if match:
                self.port = int(match.group(2))
                self.rest_port = int(match.group(3)) if match.group(3) else None
                page = _PAGE_RE.search(line)
                self.page_url = page.group(1) if page else None
                self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout_s: float = 180.0) -> int:
        """Blocks until the server listens; returns its gRPC port."""
        if not self._ready.wait(timeout_s) or self.port is None:
            self.stop()
            raise RuntimeError(f"tf_t2i.serve did not start within {timeout_s:.0f}s "
                               f"(exit code {self.proc.poll()}):\n{self.output[-4000:]}")
        return self.port

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> Optional[int]:
        """SIGTERM, then SIGKILL if it has not exited after timeout_s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        self._reader.join(timeout_s)
        return self.proc.returncode


def wait_for(predicate, timeout_s: float, interval_s: float = 0.25):
    """Polls predicate() until it returns a truthy value (returned) or time runs out (None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return None
