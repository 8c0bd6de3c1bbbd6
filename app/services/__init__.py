"""Use cases: each checks the rules, calls store functions and commits once."""
