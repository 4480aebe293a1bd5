"""Click commands. Each module keeps heavy imports inside its command bodies."""
