"""What the tests share: ports, timeouts and helpers that are not fixtures."""
