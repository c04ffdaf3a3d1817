# The contractors' fixtures serve the territory tests as they are.
from tests.contractors.conftest import acme, trades  # noqa: F401
