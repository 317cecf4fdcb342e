"""Audio in: decoding and resampling (`decode`), long-file truncation, content checks, analysis windows."""
