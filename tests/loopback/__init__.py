"""In-process loopback servers that speak real exchange wire protocols, for tests that drive the
real ccxt client classes without touching the network."""
