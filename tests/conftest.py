import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Two cores shared with other jobs: one intra-op thread is faster here than two fighting them. CPU results
    are deterministic for any fixed thread count; subprocess workers get OMP_NUM_THREADS=1 likewise."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data():
    """200 train / 100 val / 200 test real CIFAR-10 images on the CPU."""
    from kdlab.data import get_data
    return get_data("cifar10", train_size=200, val_size=100, test_size=200, device="cpu")

