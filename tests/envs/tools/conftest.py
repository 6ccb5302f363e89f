from tests.sandboxes.conftest import no_leftover_containers  # noqa: F401 - the session-wide leak check
