"""Sensors: new prompt batches, and (later) retraining when label data changes."""
