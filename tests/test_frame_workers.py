"""Frames in flight: results in order, really at once, each worker on its share of the threads; one worker
runs inline; errors reach the caller; the automatic count follows the measured rule."""

import threading

import pytest
import torch

from realtime.engine import Stylizer
from realtime.errors import UserError
from realtime.frame_workers import AUTO_MAX_ACTIVATION_BYTES, FrameWorkers, auto_frames_in_flight


def test_two_workers_run_frames_at_once_in_order_with_one_thread_each():
    together = threading.Barrier(2, timeout=10)  # breaks unless two frames are in their work at the same time
    main_threads = torch.get_num_threads()

    def work(index: int) -> tuple[int, int, str]:
        together.wait()
        return index, torch.get_num_threads(), threading.current_thread().name

    workers = FrameWorkers(work, count=2, threads=2)
    try:
        futures = [workers.submit(index) for index in range(6)]
        results = [future.result(timeout=30) for future in futures]
    finally:
        workers.close()
    assert [value[0] for value, _ in results] == list(range(6))
    assert all(threads == 1 and name.startswith("stylize") for (_, threads, name), _ in results)
    assert all(seconds >= 0 for _, seconds in results)
    assert torch.get_num_threads() == main_threads  # the caller's own count is untouched


def test_one_worker_runs_in_the_calling_thread_and_errors_reach_the_caller():
    workers = FrameWorkers(lambda: threading.current_thread(), count=1)
    (thread, _), = [workers.submit().result()]
    assert thread is threading.current_thread()

    def fail() -> None:
        raise ValueError("bad frame")

    for count in (1, 2):
        failing = FrameWorkers(fail, count=count, threads=2)
        with pytest.raises(ValueError, match="bad frame"):
            failing.submit().result(timeout=30)
        failing.close()


def test_close_waits_for_frames_in_flight():
    finished = []
    release = threading.Event()

    def work() -> None:
        release.wait(10)
        finished.append(True)

    workers = FrameWorkers(work, count=2, threads=2)
    workers.submit()
    workers.submit()
    threading.Timer(0.2, release.set).start()
    workers.close()
    assert finished == [True, True]


def test_auto_count_two_on_multi_thread_cpus_for_small_activations():
    cpu = torch.device("cpu")
    assert auto_frames_in_flight(cpu, 2, AUTO_MAX_ACTIVATION_BYTES) == 2
    assert auto_frames_in_flight(cpu, 16, 1000) == 2
    assert auto_frames_in_flight(cpu, 2, AUTO_MAX_ACTIVATION_BYTES + 1) == 1  # two frames would fight over memory
    assert auto_frames_in_flight(cpu, 1, 1000) == 1
    assert auto_frames_in_flight(torch.device("cuda"), 8, 1000) == 1
    with pytest.raises(ValueError):
        FrameWorkers(lambda: None, count=0)


def test_stylizer_counts_its_own_activations():
    """cd16x (16 channels at full resolution) keeps two bf16 720p frames in flight, vgg (64) only small ones."""
    assert Stylizer("cd16x", "cpu", "bf16", threads=2).frames_in_flight(720, 1280) == 2
    vgg = Stylizer("vgg", "cpu", "bf16", threads=2)
    assert vgg.frames_in_flight(256, 256) == 2 and vgg.frames_in_flight(720, 1280) == 1
    assert Stylizer("cd16x", "cpu", "bf16", threads=1).frames_in_flight(256, 256) == 1
    assert Stylizer("cd16x", "cpu", "bf16", threads=2, frame_workers=3).frames_in_flight(2160, 3840) == 3
    with pytest.raises(UserError, match="frame workers"):
        Stylizer("cd16x", "cpu", "bf16", frame_workers=0)
