"""The agents of both reward paths: their prompts (this project's own, in Chinese), output
schemas and the pure functions that build requests and read answers. No Dagster here: call them
from a notebook with any ``LLMRuntime``."""
