"""What every role process shares: options, signals, config watching, the listening loop."""
