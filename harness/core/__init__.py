"""Core records and utilities: errors, metric units, atomic file I/O, result records, statistics, progress.

The ground floor: these modules import nothing of the harness but each other, so every stage can use them."""
