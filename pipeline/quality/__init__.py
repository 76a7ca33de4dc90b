"""What evaluation tells people: model comparison, label hints, plots."""
