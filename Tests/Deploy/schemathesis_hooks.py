"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in test_openapi.py: tus bodies are raw bytes."""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
