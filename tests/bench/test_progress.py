"""The grid's progress line: counts, ETA, accuracy; one line per cell in logs, in place on a terminal."""

from __future__ import annotations

import io

from cnnbench.bench.progress import Progress, format_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_finished_cell_with_counts_eta_and_accuracy() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(total=4, workers=2, stream=out, tty=False, clock=clock)
    p.started("a")
    p.started("b")
    assert out.getvalue() == ""  # not a terminal: nothing until a cell ends
    clock.now = 30.0
    p.finished("a", "ok", {"test_acc": 0.98149})
    clock.now = 50.0
    p.finished("b", "failed", {"error": "RuntimeError: boom\nmore lines"})
    p.finished("c", "infeasible", note="kernel larger than input")
    lines = out.getvalue().splitlines()
    # ETA: mean duration (30 s, 50 s) × cells left / workers busy on them (min(2, left))
    assert lines == [
        "[1/4] ok a test_acc=0.981 | running 1 | failed 0 | ETA 0:45",  # 30 × 3 / 2
        "[2/4] failed b RuntimeError: boom | running 0 | failed 1 | ETA 0:40",  # 40 × 2 / 2
        "[3/4] infeasible c kernel larger than input | running 0 | failed 1 | ETA 0:40",  # 40 × 1 / 1
    ]


def test_a_cells_own_launch_and_exit_times_beat_its_time_in_the_queue() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(total=3, workers=1, stream=out, tty=False, clock=clock)
    p.started("a")
    clock.now = 100.0  # 90 s of it waiting for the fork server
    p.finished("a", "ok", {"test_acc": 0.5, "t_launch": 1000.0, "t_exit": 1010.0})
    assert out.getvalue().endswith("ETA 0:20\n")  # 10 s × 2 left


def test_on_a_terminal_the_status_line_is_rewritten_in_place() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(total=2, workers=1, stream=out, tty=True, clock=clock)
    p.started("a")
    assert out.getvalue() == "\r\x1b[K[0/2] running 1 | failed 0 | ETA ?"
    clock.now = 5.0
    p.finished("a", "ok", {"test_acc": 0.5})
    p.close()
    finished = "\r\x1b[K[1/2] ok a test_acc=0.500 | running 0 | failed 0 | ETA 0:05\n"
    status = "\r\x1b[K[1/2] running 0 | failed 0 | ETA 0:05 | last a test_acc=0.500"
    assert out.getvalue().split("ETA ?", 1)[1] == finished + status + "\r\x1b[K"


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0, 41.4, 725, 3723)] == ["0:00", "0:41", "12:05", "1:02:03"]
