"""The loan book: Portfolio, its column checks, CSV and Parquet files, the synthetic book."""
