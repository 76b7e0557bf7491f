"""Types shared by every stage: columnar sample batches, series keys, matchers, time, errors."""
