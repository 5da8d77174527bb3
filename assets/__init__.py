"""The asset graph. Assets are thin: read events, call agents/training, record events."""
