"""Quality measures: agreement, label aggregation and per-annotator signals.

Pure and vectorized: numpy arrays in, numbers out; no database, no web framework, no other
prefstack package (an import-linter contract keeps it so). See `docs/quality-measures.md`
for every measure's definition, references and the input encoding of each kind of data.
"""
