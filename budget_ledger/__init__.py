"""budget_ledger."""
