"""One parser per protocol, each turning a request body into a columnar ``SampleBatch``."""
