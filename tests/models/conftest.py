import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models run fastest single-threaded; restore torch's setting for the rest of the suite."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
