"""Suite files: the YAML schema, its validation with line numbers, and the matrix of cases it expands to.

Nothing here imports a later stage: the schema names what the stages accept, and the stages read it."""
