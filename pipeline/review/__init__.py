"""Pre-annotation for review: which tasks, the model's predictions as regions, sending them to Label Studio."""
