import dagster as dg

# One partition per prompt batch: "builtin", the paper's prompt files, and every inbox file.
prompt_batches = dg.DynamicPartitionsDefinition(name="prompt_batches")
