"""What every stage shares: errors, parameters, specs, seeds, file transactions, devices,
tensor checks and progress. Imports nothing else from the package."""
