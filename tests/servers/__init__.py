"""Real servers for the tests and benchmarks, started from rendered files on free loopback ports.

Nothing here is a mock: each launcher runs the Debian package's own server binary with a data
directory in a temporary folder. A missing binary is an error, never a skip.
"""
