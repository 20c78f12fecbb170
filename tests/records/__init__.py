"""Op records by family; each module defines RECORDS (see tests/op_records.py)."""
