"""Expressions: govaluate `when` and `depends`, the one expr-lang, `{{...}}` substitution."""
