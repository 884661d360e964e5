"""The pure core: DataFrame in, DataFrame (or Column) out. No session is created here, no table
or file is read or written, and no function takes the job's Config: only plain values and the
small frozen settings of `options.py`."""
