"""Loading user scenarios. Only this package runs user code at import time."""
