"""Layer 7, what a reader sees: charts, tables, headline JSON, provenance footers and the audit's HTML report."""
