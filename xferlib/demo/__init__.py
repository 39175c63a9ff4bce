"""The demo: its world (Fashion-MNIST source, production stream, shifts) and its loop."""
