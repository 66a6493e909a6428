"""Domain rules as plain functions: stages, transitions, working days, reminder policy, event kinds, German dates."""
