"""Statistics and claims: tests with intervals and p-values (stats), the claim records and the one rule for their
verdicts (claims), and the measurements they read (metrics: pass@k, diversity, BLEU). numpy and scipy only."""
