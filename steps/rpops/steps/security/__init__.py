"""`rpops security-scan`: dependencies (OSV advisories), source code (AST rules) and workload
configuration (Kubernetes objects), reported as JSON, SARIF 2.1.0 and Markdown."""
