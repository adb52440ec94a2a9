"""`judge pull`: fetch help-desk data page by page, resumable from a cursor kept in the ledger."""
