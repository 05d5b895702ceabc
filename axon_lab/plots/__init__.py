"""matplotlib figures from result frames: functions take frames and return figures, never touch files."""
