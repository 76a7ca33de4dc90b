"""What every stage stands on: errors, params and their checking, atomic writes, the task map, images."""
