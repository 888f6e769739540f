"""Fixtures shared by both test folders (``libs/azgo_core/tests`` and ``tests``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny nets gain nothing from threads, and on a busy 2-core machine a second thread
    waiting for a core stalls every op; the process setting is restored afterwards.
    A module asks for it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
