import pytest

from tests.helpers.survivor import memorizable_data


@pytest.fixture(scope="module")
def memorizable():
    """An overfitting task (tests.helpers.survivor.memorizable_data)."""
    return memorizable_data()
