"""Fakes for the integration tests: a fake Anthropic API, a fake `claude` CLI, a fake PTY tool."""
