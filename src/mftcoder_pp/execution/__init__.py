"""Sandboxed execution of generated code: sandbox, language table, instrumentation, verdicts."""
