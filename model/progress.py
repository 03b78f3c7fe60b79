"""Stages of a long command, each shown with the time spent and an ETA.

A long command (``synth``, ``bench``, ``report``, ``train --engine rtl``) is a sequence of stages:
elaborate, synthesise, place and route; build the simulator, simulate; measure each report item.
:class:`Stages` prints each stage as it starts, with the time since the command began and the
time still expected. The ETA comes from the **last completed run of the same command on the same
design** (the stage list and each stage's seconds are kept in ``$SPIKEFORGE_CACHE``, default
``~/.cache/spikeforge/progress.json``), or from durations the caller knows (``expected``: e.g. the
stage times of the board build stored in ``reports/data``). With neither, the ETA is "unknown (first
run)"; nothing is guessed. While one stage runs long without output (place and route), a line every
``heartbeat`` seconds says how long it has run and what is left.

Stages come in as text lines, so a function that takes a ``progress(text)`` callback feeds them
unchanged: a line that starts with ``[k/n]`` (or is sent with :meth:`Stages.stage`) opens a stage;
any other line is a detail of the current one and is printed as it is. Code deep in a call chain
that has no callback reaches the active reporter through :func:`report` (a no-op when none is
active).
"""

import contextvars
import json
import os
import re
import sys
import threading
import time

from .atomic import atomic_write_text

__all__ = ["Stages", "active", "report", "stage", "history_path", "format_seconds"]

_ACTIVE = contextvars.ContextVar("spikeforge_stages", default=None)
_STAGE_LINE = re.compile(r"^\[\d+/\d+\]\s*")
_PARENS = re.compile(r"\([^)]*\)")


def history_path():
    root = os.environ.get("SPIKEFORGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "spikeforge")
    return os.path.join(root, "progress.json")


def format_seconds(s):
    s = int(round(max(0.0, s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _label_key(text):
    """A stage's identity across runs: its text without numbering, parenthesised details (log
    paths) and digits-only differences."""
    text = _PARENS.sub("", _STAGE_LINE.sub("", text))
    return " ".join(re.sub(r"\d+", "#", text).split())


def active():
    """The active :class:`Stages`, or None."""
    return _ACTIVE.get()


def report(text):
    """Send ``text`` to the active :class:`Stages` (none active: do nothing)."""
    stages = _ACTIVE.get()
    if stages is not None:
        stages(text)


def stage(text):
    """Open stage ``text`` of the active :class:`Stages` (none active: do nothing)."""
    stages = _ACTIVE.get()
    if stages is not None:
        stages.stage(text)


def _load_history(path):
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class Stages:
    """Progress of one run of ``command`` on ``key`` (e.g. the design key): see the module
    docstring. Use as a context manager; the run's stage times are recorded only when the block
    ends without an exception (a failed run is no guide to the next one's time).

    ``expected``: a list of (label, seconds) used for the ETA when no run has been recorded.
    ``stream``: where lines go (default: stderr, so a command's JSON on stdout stays clean).
    """

    def __init__(self, command, key="", expected=None, stream=None, heartbeat=60.0,
                 history=None, clock=time.monotonic):
        self.command = command
        self.key = f"{command} | {key}"
        self.stream = stream if stream is not None else sys.stderr
        self.heartbeat = heartbeat
        self.path = history or history_path()
        self.clock = clock
        last = _load_history(self.path).get(self.key)
        if last:
            self.expected = [(s["label"], float(s["seconds"])) for s in last["stages"]]
            self.source = "the last run"
        elif expected:
            self.expected = [(_label_key(l), float(s)) for l, s in expected]
            self.source = "the stored build"
        else:
            self.expected, self.source = None, None
        self.done = []                      # (label key, seconds) of finished stages
        self.current = None                 # (label key, text, start time)
        self.t0 = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._token = None

    # --- the context manager -------------------------------------------------------------
    def __enter__(self):
        self.t0 = self.clock()
        self._token = _ACTIVE.set(self)
        if self.heartbeat:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        _ACTIVE.reset(self._token)
        with self._lock:
            self._close_stage()
        if exc_type is None and self.done:
            self._record()
        return False

    # --- lines in --------------------------------------------------------------------------
    def __call__(self, text):
        if _STAGE_LINE.match(text):
            self.stage(_STAGE_LINE.sub("", text))
        else:
            self._print(text)

    def stage(self, text):
        """Open a new stage named ``text`` (the previous one ends now)."""
        with self._lock:
            self._close_stage()
            now = self.clock()
            self.current = (_label_key(text), text, now)
            index = len(self.done)
            total = f"/{len(self.expected)}" if self.expected else ""
            self._print(f"[{index + 1}{total}] {text}  ({format_seconds(now - self.t0)} in; "
                        f"{self._eta_text(now)})")

    def eta(self, now=None):
        """Seconds still expected, or None when there is nothing to go by."""
        now = self.clock() if now is None else now
        if not self.expected:
            return None
        index = len(self.done)
        labels_so_far = [l for l, _ in self.done] + ([self.current[0]] if self.current else [])
        expected_labels = [l for l, _ in self.expected[:len(labels_so_far)]]
        if labels_so_far == expected_labels and self.current is not None:
            in_stage = now - self.current[2]
            this = self.expected[index][1]
            return max(0.0, this - in_stage) + sum(s for _, s in self.expected[index + 1:])
        # the stages differ from the recorded ones: the total is the best guide left
        return max(0.0, sum(s for _, s in self.expected) - (now - self.t0))

    # --- internals -------------------------------------------------------------------------
    def _eta_text(self, now):
        eta = self.eta(now)
        if eta is None:
            return "ETA unknown (first run; timed for the next)"
        return f"ETA {format_seconds(eta)}, from {self.source}"

    def _print(self, text):
        print(text, file=self.stream, flush=True)

    def _close_stage(self):
        if self.current is not None:
            label, _, start = self.current
            self.done.append((label, round(self.clock() - start, 1)))
            self.current = None

    def _beat(self):
        last_beat = self.clock()
        while not self._stop.wait(min(5.0, self.heartbeat)):
            with self._lock:
                now = self.clock()
                if self.current is None or now - last_beat < self.heartbeat:
                    continue
                last_beat = now
                _, text, start = self.current
                short = text if len(text) <= 60 else text[:57] + "..."
                self._print(f"      ... {short}: {format_seconds(now - start)} in this stage, "
                            f"{format_seconds(now - self.t0)} in all; {self._eta_text(now)}")

    def _record(self):
        history = _load_history(self.path)
        history[self.key] = {"stages": [{"label": l, "seconds": s} for l, s in self.done],
                             "seconds": round(sum(s for _, s in self.done), 1),
                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        try:
            atomic_write_text(self.path, json.dumps(history, indent=1) + "\n")
        except OSError:
            pass            # a read-only home directory costs the next ETA, not this run
