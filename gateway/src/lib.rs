//! Roomcast gateway library (the `roomcast` binary is a thin CLI over it).
